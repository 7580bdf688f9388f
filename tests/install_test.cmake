# ctest install_and_examples (label "install"): installs this build into a scratch prefix, then
# builds apps/examples against it twice, with find_package(m3embed) and with pkg-config, and
# runs the examples on the demo model (tests/fixtures/tiny-bin converted by the CLI).
# Inputs (-D): M3_SOURCE_DIR, M3_BINARY_DIR, M3_CLI, M3_GENERATOR, M3_C_COMPILER, M3_CXX_COMPILER.
set(scratch ${M3_BINARY_DIR}/test-scratch/install)
set(prefix ${scratch}/prefix)
file(REMOVE_RECURSE ${scratch})
file(MAKE_DIRECTORY ${scratch})

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    string(REPLACE ";" " " cmd "${ARGN}")
    message(FATAL_ERROR "failed (${rc}): ${cmd}\n${out}")
  endif()
  set(last_output "${out}" PARENT_SCOPE)
endfunction()

run(${CMAKE_COMMAND} --install ${M3_BINARY_DIR} --prefix ${prefix} --component dev)
foreach(f include/m3embed/m3embed.h include/m3embed/m3embed.hpp)
  if(NOT EXISTS ${prefix}/${f})
    message(FATAL_ERROR "not installed: ${f}")
  endif()
endforeach()
file(GLOB_RECURSE libs ${prefix}/*/libm3embed.a)
file(GLOB_RECURSE configs ${prefix}/*/m3embedConfig.cmake)
file(GLOB_RECURSE pcs ${prefix}/*/m3embed.pc)
if(NOT libs OR NOT configs OR NOT pcs)
  message(FATAL_ERROR "missing from ${prefix}: libm3embed.a (${libs}), m3embedConfig.cmake (${configs}), m3embed.pc (${pcs})")
endif()
file(SIZE ${libs} lib_size)
message(STATUS "installed ${libs} (${lib_size} bytes)")

# The public C header must compile alone as C (it includes only standard headers).
file(WRITE ${scratch}/header_only.c "#include <m3embed/m3embed.h>\nint main(void) { return M3_OK; }\n")
run(${M3_C_COMPILER} -std=c99 -Wall -Wextra -Werror -pedantic -I${prefix}/include -c ${scratch}/header_only.c
    -o ${scratch}/header_only.o)

file(WRITE ${scratch}/header_only.cpp "#include <m3embed/m3embed.hpp>\nint main() { return M3_OK; }\n")
run(${M3_CXX_COMPILER} -std=c++17 -Wall -Wextra -Werror -pedantic -I${prefix}/include -c ${scratch}/header_only.cpp
    -o ${scratch}/header_only_cpp.o)

set(model ${scratch}/demo.m3)
run(${M3_CLI} convert ${M3_SOURCE_DIR}/tests/fixtures/tiny-bin -o ${model})

# 1. CMake package.
run(${CMAKE_COMMAND} -S ${M3_SOURCE_DIR}/apps/examples -B ${scratch}/build -G "${M3_GENERATOR}"
    -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH=${prefix}
    -DCMAKE_C_COMPILER=${M3_C_COMPILER} -DCMAKE_CXX_COMPILER=${M3_CXX_COMPILER})
run(${CMAKE_COMMAND} --build ${scratch}/build)
run(${scratch}/build/example_c ${model} "What is BGE M3?" "Defination of BM25")
message(STATUS "example_c:\n${last_output}")
foreach(want "dense[" "sparse" "colbert" "score")
  string(FIND "${last_output}" "${want}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "example_c output lacks \"${want}\":\n${last_output}")
  endif()
endforeach()
run(${scratch}/build/example_cpp ${model} "What is BGE M3?")
message(STATUS "example_cpp:\n${last_output}")
# A bad model path: a message and exit status 1, no crash.
execute_process(COMMAND ${scratch}/build/example_c ${scratch}/missing.m3 text RESULT_VARIABLE rc ERROR_VARIABLE err)
if(NOT rc EQUAL 1 OR NOT err MATCHES "missing.m3")
  message(FATAL_ERROR "example_c on a missing model: exit ${rc}, stderr: ${err}")
endif()

# 2. pkg-config (static link flags).
find_program(PKG_CONFIG pkg-config)
if(PKG_CONFIG)
  get_filename_component(pcdir ${pcs} DIRECTORY)
  set(ENV{PKG_CONFIG_PATH} ${pcdir})
  run(${PKG_CONFIG} --cflags --libs --static m3embed)
  string(STRIP "${last_output}" flags)
  separate_arguments(flags UNIX_COMMAND "${flags}")
  run(${M3_C_COMPILER} -std=c99 ${M3_SOURCE_DIR}/apps/examples/example.c -o ${scratch}/example_c_pkgconfig ${flags})
  run(${scratch}/example_c_pkgconfig ${model} "hello")
endif()
