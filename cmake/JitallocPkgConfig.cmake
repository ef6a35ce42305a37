# jitalloc_install_pkgconfig(NAME): installs cmake/NAME.pc.in as
# <libdir>/pkgconfig/NAME.pc. The file is written at install time, so its prefix is the
# one actually installed to: `cmake --install --prefix P`, or /usr under CPack (which
# installs with DESTDIR, see cmake/JitallocPackaging.cmake). Templates use @VAR@ for
# configure-time values and @JITALLOC_PC_PREFIX@ for the prefix.
function(jitalloc_install_pkgconfig name)
  set(JITALLOC_PC_PREFIX "@JITALLOC_PC_PREFIX@")  # left for install time
  set(template ${PROJECT_BINARY_DIR}/pkgconfig/${name}.pc.in)
  configure_file(${PROJECT_SOURCE_DIR}/cmake/${name}.pc.in ${template} @ONLY)
  install(CODE "
    set(JITALLOC_PC_PREFIX \"\${CMAKE_INSTALL_PREFIX}\")
    configure_file(${template} ${PROJECT_BINARY_DIR}/pkgconfig/${name}.pc @ONLY)
    file(INSTALL ${PROJECT_BINARY_DIR}/pkgconfig/${name}.pc
         DESTINATION \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_LIBDIR}/pkgconfig\")"
    ${ARGN})
endfunction()
