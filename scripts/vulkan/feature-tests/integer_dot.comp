#version 450
// Does glslc know GL_EXT_integer_dot_product? ggml-vulkan's CMakeLists.txt compiles
// this shader and builds the shaders that need the extension only if glslc
// does not answer "extension not supported: GL_EXT_integer_dot_product".
// scripts/vulkan/CMakeLists.txt supplies it where the module lacks ggml's
// own vulkan-shaders/feature-tests.
#extension GL_EXT_integer_dot_product : require

layout(local_size_x = 1) in;

void main() {}
