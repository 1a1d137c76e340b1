// See cdeps.go. A compiler without __has_include gets the compiler's own
// error from the common package.
#if defined(__has_include)
#if !__has_include(<nlohmann/json.hpp>)
#error "llamago: the C++ compiler does not find nlohmann/json.hpp, which llama.cpp's JSON Schema converter needs. Install nlohmann/json: apt-get install nlohmann-json3-dev (Debian, Ubuntu), dnf install json-devel (Fedora), pacman -S nlohmann-json (Arch), brew install nlohmann-json and CGO_CPPFLAGS=-I$(brew --prefix)/include (macOS), pacman -S mingw-w64-x86_64-nlohmann-json (MSYS2); or put json.hpp and json_fwd.hpp of a nlohmann/json release in an nlohmann/ directory on CGO_CPPFLAGS's include path."
#endif
#endif
