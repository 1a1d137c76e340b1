// Force-included into ggml-vulkan.cpp by scripts/vulkan/CMakeLists.txt.
//
// ggml-vulkan.cpp sets up the validation layer's settings with the types of
// the VK_EXT_layer_settings extension (vk::LayerSettingEXT,
// vk::LayerSettingTypeEXT, vk::LayerSettingsCreateInfoEXT), which older
// Vulkan headers lack (Debian 12's 1.3.239 among them). It only chains
// them into vkCreateInstance's create info, naming a setting of the
// validation layer, which it enables only in a GGML_VULKAN_VALIDATE build;
// so declaring them here as the Vulkan specification defines them is
// enough. With headers that have the extension this file declares nothing.
//
// ggml-vulkan.cpp defines macros before it includes vulkan.hpp, so this file
// includes only the C header, and declares the C++ types in the namespace
// vulkan.hpp uses (vk, unless VULKAN_HPP_NAMESPACE says otherwise) without
// anything of vulkan.hpp.
#pragma once

#ifdef __cplusplus
#include <vulkan/vulkan_core.h>

#ifndef VK_EXT_layer_settings
#include <cstdint>

#define LLAMAGO_VK_EXT_LAYER_SETTINGS_COMPAT 1

// The C declarations, from the specification's VK_EXT_layer_settings.
typedef enum VkLayerSettingTypeEXT {
    VK_LAYER_SETTING_TYPE_BOOL32_EXT  = 0,
    VK_LAYER_SETTING_TYPE_INT32_EXT   = 1,
    VK_LAYER_SETTING_TYPE_INT64_EXT   = 2,
    VK_LAYER_SETTING_TYPE_UINT32_EXT  = 3,
    VK_LAYER_SETTING_TYPE_UINT64_EXT  = 4,
    VK_LAYER_SETTING_TYPE_FLOAT32_EXT = 5,
    VK_LAYER_SETTING_TYPE_FLOAT64_EXT = 6,
    VK_LAYER_SETTING_TYPE_STRING_EXT  = 7,
    VK_LAYER_SETTING_TYPE_MAX_ENUM_EXT = 0x7FFFFFFF
} VkLayerSettingTypeEXT;

typedef struct VkLayerSettingEXT {
    const char *          pLayerName;
    const char *          pSettingName;
    VkLayerSettingTypeEXT type;
    uint32_t              valueCount;
    const void *          pValues;
} VkLayerSettingEXT;

typedef struct VkLayerSettingsCreateInfoEXT {
    VkStructureType           sType;
    const void *              pNext;
    uint32_t                  settingCount;
    const VkLayerSettingEXT * pSettings;
} VkLayerSettingsCreateInfoEXT;

// VK_STRUCTURE_TYPE_LAYER_SETTINGS_CREATE_INFO_EXT: extension number 497,
// so 1000000000 + (497 - 1) * 1000.
#define LLAMAGO_VK_STRUCTURE_TYPE_LAYER_SETTINGS_CREATE_INFO_EXT ((VkStructureType) 1000496000)

#ifndef VULKAN_HPP_NAMESPACE
#define VULKAN_HPP_NAMESPACE vk
#endif

namespace VULKAN_HPP_NAMESPACE {

enum class LayerSettingTypeEXT {
    eBool32  = VK_LAYER_SETTING_TYPE_BOOL32_EXT,
    eInt32   = VK_LAYER_SETTING_TYPE_INT32_EXT,
    eInt64   = VK_LAYER_SETTING_TYPE_INT64_EXT,
    eUint32  = VK_LAYER_SETTING_TYPE_UINT32_EXT,
    eUint64  = VK_LAYER_SETTING_TYPE_UINT64_EXT,
    eFloat32 = VK_LAYER_SETTING_TYPE_FLOAT32_EXT,
    eFloat64 = VK_LAYER_SETTING_TYPE_FLOAT64_EXT,
    eString  = VK_LAYER_SETTING_TYPE_STRING_EXT,
};

// Laid out as VkLayerSettingEXT (the C++ wrappers of vulkan.hpp are).
struct LayerSettingEXT {
    const char *        pLayerName   = nullptr;
    const char *        pSettingName = nullptr;
    LayerSettingTypeEXT type         = LayerSettingTypeEXT::eBool32;
    uint32_t            valueCount   = 0;
    const void *        pValues      = nullptr;
};

// Laid out as VkLayerSettingsCreateInfoEXT; built, as vulkan.hpp's is, from
// a contiguous container of settings (std::vector, std::array).
struct LayerSettingsCreateInfoEXT {
    VkStructureType         sType        = LLAMAGO_VK_STRUCTURE_TYPE_LAYER_SETTINGS_CREATE_INFO_EXT;
    const void *            pNext        = nullptr;
    uint32_t                settingCount = 0;
    const LayerSettingEXT * pSettings    = nullptr;

    LayerSettingsCreateInfoEXT() = default;

    template <typename Settings>
    explicit LayerSettingsCreateInfoEXT(const Settings & settings, const void * next = nullptr) :
        pNext(next),
        settingCount(static_cast<uint32_t>(settings.size())),
        pSettings(settings.size() > 0 ? settings.data() : nullptr) {}
};

static_assert(sizeof(LayerSettingEXT) == sizeof(VkLayerSettingEXT), "LayerSettingEXT layout");
static_assert(sizeof(LayerSettingsCreateInfoEXT) == sizeof(VkLayerSettingsCreateInfoEXT),
              "LayerSettingsCreateInfoEXT layout");

}  // namespace VULKAN_HPP_NAMESPACE

#endif  // VK_EXT_layer_settings
#endif  // __cplusplus
