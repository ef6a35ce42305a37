# Cross-compiling for AArch64 Linux with Debian's g++-aarch64-linux-gnu:
#   cmake -S . -B build-arm64 -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake
# GoogleTest for the target (libgtest-dev:arm64 unpacked with dpkg -x, see
# tests/arm64/run.sh) is found through JITALLOC_ARM64_SYSROOT_EXTRA (its usr/ tree).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
if(DEFINED ENV{JITALLOC_ARM64_SYSROOT_EXTRA})
  list(APPEND CMAKE_FIND_ROOT_PATH $ENV{JITALLOC_ARM64_SYSROOT_EXTRA})
endif()
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
# pkg-config must not find the build host's libraries (Capstone for tools/).
set(ENV{PKG_CONFIG_LIBDIR} /usr/lib/aarch64-linux-gnu/pkgconfig:/usr/aarch64-linux-gnu/lib/pkgconfig)
set(ENV{PKG_CONFIG_SYSROOT_DIR} /)
