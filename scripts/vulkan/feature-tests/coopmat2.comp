#version 450
// Does glslc know GL_NV_cooperative_matrix2? ggml-vulkan's CMakeLists.txt compiles
// this shader and builds the shaders that need the extension only if glslc
// does not answer "extension not supported: GL_NV_cooperative_matrix2".
// scripts/vulkan/CMakeLists.txt supplies it where the module lacks ggml's
// own vulkan-shaders/feature-tests.
#extension GL_NV_cooperative_matrix2 : require

layout(local_size_x = 1) in;

void main() {}
