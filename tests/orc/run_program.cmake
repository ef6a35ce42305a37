# Runs one test program natively and through jitalloc-lli, and fails unless both print
# the same stdout and exit with the same status, and the W^X monitor preloaded into the
# jitalloc-lli process scanned at least once and saw no violation.
#   NATIVE   the natively compiled program
#   LLI      jitalloc-lli
#   MODULES  the program's bitcode, main module first (a list)
#   ARGS     arguments for the program (a list, may be empty)
#   WRITER   --writer for jitalloc-lli (empty: the default)
#   STRICT   1: the writer is strict, also check that no writable view of code exists
#   PRELOAD  the monitor shim (wx_preload.so)
#   WORK     scratch directory
cmake_minimum_required(VERSION 3.25)
file(MAKE_DIRECTORY ${WORK})

execute_process(COMMAND ${NATIVE} ${ARGS}
  RESULT_VARIABLE native_rc OUTPUT_VARIABLE native_out ERROR_VARIABLE native_err
  TIMEOUT 120)

list(GET MODULES 0 main_module)
set(extra_modules ${MODULES})
list(REMOVE_AT extra_modules 0)
set(lli_args)
if(WRITER)
  list(APPEND lli_args --writer ${WRITER})
endif()
foreach(m IN LISTS extra_modules)
  list(APPEND lli_args --module ${m})
endforeach()
set(report ${WORK}/wx-report.txt)
file(REMOVE ${report})
execute_process(
  COMMAND ${CMAKE_COMMAND} -E env LD_PRELOAD=${PRELOAD} JITALLOC_WX_REPORT=${report}
          JITALLOC_WX_STRICT=${STRICT}
          ${LLI} ${lli_args} ${main_module} ${ARGS}
  RESULT_VARIABLE jit_rc OUTPUT_VARIABLE jit_out ERROR_VARIABLE jit_err
  TIMEOUT 120)

file(WRITE ${WORK}/native.out "${native_out}")
file(WRITE ${WORK}/jit.out "${jit_out}")
set(failures "")
if(NOT native_rc STREQUAL jit_rc)
  string(APPEND failures "exit status: native ${native_rc}, jitalloc-lli ${jit_rc}\n")
endif()
if(NOT native_out STREQUAL jit_out)
  string(APPEND failures "stdout differs (${WORK}/native.out vs ${WORK}/jit.out)\n")
endif()
if(NOT EXISTS ${report})
  string(APPEND failures "the W^X monitor wrote no report\n")
else()
  file(READ ${report} wx)
  if(NOT wx MATCHES "scans [1-9]")
    string(APPEND failures "the W^X monitor never scanned:\n${wx}")
  endif()
  if(NOT wx MATCHES "violations 0\n")
    string(APPEND failures "W^X monitor:\n${wx}")
  endif()
endif()
if(failures)
  message(FATAL_ERROR "${failures}--- jitalloc-lli stderr:\n${jit_err}\n--- jitalloc-lli stdout:\n${jit_out}\n--- native stdout:\n${native_out}")
endif()
string(LENGTH "${jit_out}" out_len)
message(STATUS "same output (${out_len} bytes) and status (${jit_rc}) as the native build")
