# Helpers shared by the CMake scripts that test installed and packaged trees
# (run_install_test.cmake, tests/package/run_deb_test.cmake).

# run(COMMAND...): runs it, fails the test with its output if it fails; LAST_OUTPUT is its
# standard output.
function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "command failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
  set(LAST_OUTPUT "${out}" PARENT_SCOPE)
endfunction()

# Runs an installed program as a user would: no LD_LIBRARY_PATH to help it find libraries.
function(run_installed)
  run(${CMAKE_COMMAND} -E env --unset=LD_LIBRARY_PATH ${ARGN})
  set(LAST_OUTPUT "${LAST_OUTPUT}" PARENT_SCOPE)
endfunction()

# expect_loads(EXE LIB DIR): ldd shows EXE loading LIB (a file name such as
# libjitalloc.so.0) from directory DIR.
# The directories are compared after resolving them (ldd prints a RUNPATH of
# $ORIGIN/../lib as .../bin/../lib).
function(expect_loads exe lib dir)
  run_installed(ldd ${exe})
  string(REPLACE "." "\\." lib_re "${lib}")
  if(NOT LAST_OUTPUT MATCHES "${lib_re}[^\n]* => ([^ \n]+)")
    message(FATAL_ERROR "${exe} does not load ${lib}:\n${LAST_OUTPUT}")
  endif()
  get_filename_component(loaded_dir "${CMAKE_MATCH_1}" DIRECTORY)
  file(REAL_PATH "${loaded_dir}" loaded_dir)
  file(REAL_PATH "${dir}" want_dir)
  if(NOT loaded_dir STREQUAL want_dir)
    message(FATAL_ERROR "${exe} loads ${lib} from ${loaded_dir}, want ${want_dir}:\n${LAST_OUTPUT}")
  endif()
endfunction()

# expect_no_shared_jitalloc(EXE): EXE was linked with the archive, not libjitalloc.so.
function(expect_no_shared_jitalloc exe)
  run(ldd ${exe})
  if(LAST_OUTPUT MATCHES "libjitalloc")
    message(FATAL_ERROR "${exe} loads a shared libjitalloc, want the static archive:\n${LAST_OUTPUT}")
  endif()
endfunction()
