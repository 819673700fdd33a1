# libFuzzer targets for the protocol layer (framing, dispatch) and the sandbox's result
# channel (channel), built with clang by run.sh
# and run for a bounded time from the checked-in corpus (PYCELL_FUZZ_SECONDS per target).
find_program(PYCELL_CLANGXX clang++)
if(PYCELL_CLANGXX)
  set(PYCELL_FUZZ_SECONDS 20 CACHE STRING "seconds each fuzz target runs under ctest")
  add_test(NAME fuzz_protocol
           COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/run.sh ${PROJECT_SOURCE_DIR}
                   ${CMAKE_CURRENT_BINARY_DIR}/fuzz ${PYCELL_FUZZ_SECONDS})
  # COST: its usual seconds (compiling and fuzzing), so a fresh build tree starts it early.
  set_tests_properties(fuzz_protocol PROPERTIES TIMEOUT 600 COST 150 PASS_REGULAR_EXPRESSION "fuzzing: no crash")
else()
  message(WARNING "clang++ not found: the fuzz targets cannot run (scripts/install-deps.sh installs clang)")
endif()

# The seed corpus and the crash reproducers, replayed through each target with the
# project's compiler (and its sanitizers, in that build): regression tests that need no clang.
foreach(target framing dispatch channel)
  add_executable(fuzz_replay_${target} ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/replay_main.cc
                 ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/${target}_fuzz.cc)
  target_link_libraries(fuzz_replay_${target} PRIVATE pycell_core)
  add_test(NAME fuzz_regressions_${target}
           COMMAND fuzz_replay_${target} ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/${target}
                   ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/regressions/${target})
endforeach()
