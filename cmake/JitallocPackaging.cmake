# Debian packages: `cpack -G DEB` in a build tree (README, "Debian packages").
#
#   libjitalloc0          runtime  libjitalloc.so.0
#   jitalloc-dev          dev      headers, libjitalloc.a, the .so links, the CMake package
#                                  (jitalloc::jitalloc / ::static / ::inspect), pkg-config
#                                  (jitalloc, jitalloc-static, jitalloc-inspect)
#   libjitalloc-inspect0  inspect  libjitalloc-inspect.so.0 (Capstone)     [with Capstone]
#   jitalloc-tools        tools    jitalloc-dump, and jitalloc-lli where LLVM 16 was found
#   libjitalloc-orc0      orc      libjitalloc-orc.so.0 (libLLVM-16)        [with LLVM 16]
#   jitalloc-orc-dev      orc-dev  orc.hpp, its .so link, jitalloc::orc     [with LLVM 16]
#
# Dependencies on other Debian packages come from dpkg-shlibdeps (libc6, libstdc++6,
# libcapstone4, libllvm16, ...); between these packages they are exact versions, since
# the libraries are built together. Files install under /usr (CPack's DESTDIR install, so
# the pkg-config files name /usr, as an install with --prefix /usr would).
set(CPACK_PACKAGE_NAME jitalloc)
set(CPACK_PACKAGE_VENDOR "jitalloc")
set(CPACK_PACKAGE_CONTACT "jitalloc maintainers <jitalloc@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "executable memory for JIT compilers")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
# A DESTDIR install with the prefix /usr: install(CODE) (the .pc files) sees /usr as
# CMAKE_INSTALL_PREFIX, not CPack's staging directory.
set(CPACK_SET_DESTDIR ON)
set(CPACK_INSTALL_PREFIX /usr)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# Each package is staged alone, so dpkg-shlibdeps finds libjitalloc.so.0 (needed by the
# inspect and orc libraries and the tools) in the build tree; the dependencies on this
# build's own packages are the exact versions below.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS_PRIVATE_DIRS ${PROJECT_BINARY_DIR} ${PROJECT_BINARY_DIR}/tools
    ${PROJECT_BINARY_DIR}/orc)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS ON)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS_POLICY ">=")
set(CPACK_DEBIAN_PACKAGE_HOMEPAGE "https://localhost/jitalloc")

set(_deb_version "${PROJECT_VERSION}-${CPACK_DEBIAN_PACKAGE_RELEASE}")
# jitalloc_deb(COMPONENT PACKAGE SECTION SUMMARY [DEPENDS ...]): one Debian package.
# DEPENDS are packages of this build, required at exactly this version.
macro(jitalloc_deb comp pkg section summary)
  string(TOUPPER ${comp} _c)  # CPack's spelling: ORC-DEV for orc-dev
  set(CPACK_DEBIAN_${_c}_PACKAGE_NAME ${pkg})
  set(CPACK_DEBIAN_${_c}_PACKAGE_SECTION ${section})
  set(CPACK_COMPONENT_${_c}_DESCRIPTION "${summary}")
  set(_deps)
  foreach(d ${ARGN})
    list(APPEND _deps "${d} (= ${_deb_version})")
  endforeach()
  list(JOIN _deps ", " CPACK_DEBIAN_${_c}_PACKAGE_DEPENDS)
  list(APPEND CPACK_COMPONENTS_ALL ${comp})
endmacro()

set(CPACK_COMPONENTS_ALL)
jitalloc_deb(runtime libjitalloc0 libs
  "jitalloc: executable memory for JIT compilers (W^X, huge pages, dense slabs) - runtime library")
set(_dev_deps libjitalloc0)
if(TARGET jitalloc_inspect)
  jitalloc_deb(inspect libjitalloc-inspect0 libs
    "jitalloc: reading jitalloc dumps and disassembling JIT code (Capstone) - runtime library"
    libjitalloc0)
  list(APPEND _dev_deps libjitalloc-inspect0)
endif()
jitalloc_deb(dev jitalloc-dev libdevel
  "jitalloc: development files (headers, static library, CMake package, pkg-config)"
  ${_dev_deps})
set(_tools_deps libjitalloc0)
if(TARGET jitalloc_inspect)
  list(APPEND _tools_deps libjitalloc-inspect0)
endif()
if(TARGET jitalloc_orc)
  jitalloc_deb(orc libjitalloc-orc0 libs
    "jitalloc: LLVM ORC JITLink memory manager on jitalloc (LLVM 16) - runtime library"
    libjitalloc0)
  jitalloc_deb(orc-dev jitalloc-orc-dev libdevel
    "jitalloc: LLVM ORC memory manager - development files (orc.hpp, jitalloc::orc)"
    jitalloc-dev libjitalloc-orc0)
  string(APPEND CPACK_DEBIAN_ORC-DEV_PACKAGE_DEPENDS ", llvm-16-dev")
  list(APPEND _tools_deps libjitalloc-orc0)
endif()
if(TARGET jitalloc-dump OR TARGET jitalloc-lli)
  jitalloc_deb(tools jitalloc-tools devel
    "jitalloc: jitalloc-dump (inspect dumps, disassemble JIT code) and jitalloc-lli (run LLVM IR on jitalloc-orc)"
    ${_tools_deps})
endif()
string(APPEND CPACK_DEBIAN_DEV_PACKAGE_DEPENDS ", libc6-dev")

include(CPack)
