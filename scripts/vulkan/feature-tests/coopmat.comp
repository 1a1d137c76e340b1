#version 450
// Does glslc know GL_KHR_cooperative_matrix? ggml-vulkan's CMakeLists.txt compiles
// this shader and builds the shaders that need the extension only if glslc
// does not answer "extension not supported: GL_KHR_cooperative_matrix".
// scripts/vulkan/CMakeLists.txt supplies it where the module lacks ggml's
// own vulkan-shaders/feature-tests.
#extension GL_KHR_cooperative_matrix : require

layout(local_size_x = 1) in;

void main() {}
