# core_exports: libjitalloc.so exports exactly its documented C API.
#
# Three lists must agree, and the test prints what differs:
#   - the functions declared in the public headers (API_HEADERS, '|'-separated), plus the
#     two GDB JIT interface names, which must be named in GDB_HEADER;
#   - the global: list of the version script MAP (one version node, VERSION);
#   - the dynamic symbols the built library LIB defines (nm -D --defined-only), each of
#     which must carry the default version @@VERSION.
# Usage: cmake -DLIB=... -DNM=... -DMAP=... -DVERSION=JITALLOC_0 -DAPI_HEADERS="a.h|b.h"
#              -DGDB_HEADER=... -P check_exports.cmake
foreach(v LIB NM MAP VERSION API_HEADERS GDB_HEADER)
  if(NOT DEFINED ${v})
    message(FATAL_ERROR "check_exports: ${v} is not set")
  endif()
endforeach()

set(failures "")
macro(fail msg)
  string(APPEND failures "  ${msg}\n")
endmacro()

# Drops comments and preprocessor lines from C source text.
function(strip_c text out)
  string(REGEX REPLACE "/\\*([^*]|\\*+[^*/])*\\*+/" " " text "${text}")
  string(REGEX REPLACE "//[^\n]*" "" text "${text}")
  string(REGEX REPLACE "(^|\n)[ \t]*#[^\n]*" "\\1" text "${text}")
  set(${out} "${text}" PARENT_SCOPE)
endfunction()

# ---- the headers: every declared function, NAME( preceded by a type
set(header_api "")
string(REPLACE "|" ";" API_HEADERS "${API_HEADERS}")
foreach(h ${API_HEADERS})
  file(READ "${h}" text)
  strip_c("${text}" text)
  string(REGEX MATCHALL "[A-Za-z_][A-Za-z0-9_]*[ \t\n*]+[A-Za-z_][A-Za-z0-9_]*[ \t\n]*\\(" decls "${text}")
  foreach(d ${decls})
    string(REGEX REPLACE ".*[ \t\n*]([A-Za-z_][A-Za-z0-9_]*)[ \t\n]*\\($" "\\1" name "${d}")
    list(APPEND header_api ${name})
  endforeach()
endforeach()
file(READ "${GDB_HEADER}" gdb_text)
foreach(name __jit_debug_descriptor __jit_debug_register_code)
  string(FIND "${gdb_text}" "${name}" at)
  if(at LESS 0)
    fail("${name} is exported for GDB but not described in ${GDB_HEADER}")
  endif()
  list(APPEND header_api ${name})
endforeach()
list(REMOVE_DUPLICATES header_api)

# ---- the version script
file(READ "${MAP}" map_text)
strip_c("${map_text}" map_text)
string(REGEX MATCHALL "[A-Za-z_][A-Za-z0-9_]*[ \t\n]*{" nodes "${map_text}")
if(NOT nodes STREQUAL "${VERSION} {")
  fail("${MAP}: expected exactly one version node ${VERSION}, found: ${nodes}")
endif()
if(NOT map_text MATCHES "global:(.*)local:[ \t\n]*\\*[ \t\n]*;")
  fail("${MAP}: no 'global: ... local: *;' in ${VERSION}")
endif()
string(REGEX MATCHALL "[A-Za-z_][A-Za-z0-9_]*" map_api "${CMAKE_MATCH_1}")

# ---- the built library
execute_process(COMMAND "${NM}" -D --defined-only --with-symbol-versions "${LIB}"
  OUTPUT_VARIABLE nm_out RESULT_VARIABLE nm_rc)
if(NOT nm_rc EQUAL 0)
  message(FATAL_ERROR "check_exports: ${NM} -D ${LIB} failed (${nm_rc})")
endif()
string(REPLACE "\n" ";" nm_lines "${nm_out}")
set(lib_api "")
foreach(line ${nm_lines})
  if(line MATCHES "^[0-9a-f]+ A ${VERSION}$")
    continue()  # the version node itself
  endif()
  if(NOT line MATCHES "^[0-9a-f]+ [A-Za-z] ([^@ ]+)(@@?.*)?$")
    continue()
  endif()
  set(name ${CMAKE_MATCH_1})
  set(ver "${CMAKE_MATCH_2}")
  list(APPEND lib_api ${name})
  if(NOT ver STREQUAL "@@${VERSION}")
    fail("${name} is exported with version '${ver}', not @@${VERSION}")
  endif()
endforeach()

function(compare a_name b_name)
  set(a ${${a_name}})
  set(b ${${b_name}})
  set(extra ${a})
  list(REMOVE_ITEM extra ${b})
  if(extra)
    list(JOIN extra " " extra)
    set(failures "${failures}  in ${a_name} but not in ${b_name}: ${extra}\n" PARENT_SCOPE)
  endif()
endfunction()
compare(lib_api map_api)
compare(map_api lib_api)
compare(map_api header_api)
compare(header_api map_api)

list(LENGTH lib_api n)
if(failures)
  message(FATAL_ERROR "check_exports: ${LIB} (${n} exported symbols):\n${failures}")
endif()
message(STATUS "check_exports: ${n} symbols, all @@${VERSION}, headers and ${MAP} agree")
