# Project-wide helpers.

# sfpo_library(NAME SOURCES ... DEPS ...): one library target per unit; includes are rooted at
# the repository root ("common/status.h").
function(sfpo_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_library(${name} STATIC ${ARG_SOURCES})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR})
  target_link_libraries(${name} PUBLIC ${ARG_DEPS})
endfunction()

# sfpo_test(NAME SOURCES ... DEPS ... [LABELS ...]): a GoogleTest binary, discovered per case.
function(sfpo_test name)
  cmake_parse_arguments(ARG "" "TIMEOUT" "SOURCES;DEPS;LABELS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} GTest::gmock GTest::gtest_main)
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 120)
  endif()
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 60
    PROPERTIES TIMEOUT ${ARG_TIMEOUT} LABELS "${ARG_LABELS}"
    ENVIRONMENT "SFPO_BINARY=$<TARGET_FILE:sfpo>;SFPO_SOURCE_DIR=${PROJECT_SOURCE_DIR}")
endfunction()
