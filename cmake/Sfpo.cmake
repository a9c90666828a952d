# Project-wide helpers.

# sfpo_library(NAME SOURCES ... DEPS ...): one library target per unit; includes are rooted at
# the repository root ("common/status.h").
function(sfpo_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_library(${name} STATIC ${ARG_SOURCES})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR})
  target_link_libraries(${name} PUBLIC ${ARG_DEPS})
endfunction()

# sfpo_test(NAME SOURCES ... DEPS ... [LABELS ...] [TIMEOUT s]): a GoogleTest binary, discovered
# per case. Every case runs with SFPO_BINARY (the built `sfpo`) and SFPO_SOURCE_DIR in its
# environment.
function(sfpo_test name)
  cmake_parse_arguments(ARG "" "TIMEOUT" "SOURCES;DEPS;LABELS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} GTest::gmock GTest::gtest_main)
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 120)
  endif()
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 60 TEST_LIST ${name}_TESTS
    PROPERTIES TIMEOUT ${ARG_TIMEOUT})
  # gtest_discover_tests flattens list-valued PROPERTIES (ENVIRONMENT, LABELS) into separate
  # arguments, so a second variable or an empty label list silently breaks them. Set those from
  # a file that ctest includes after the discovered tests instead.
  set(env "SFPO_BINARY=$<TARGET_FILE:sfpo>" "SFPO_SOURCE_DIR=${PROJECT_SOURCE_DIR}")
  set(props_file "${CMAKE_CURRENT_BINARY_DIR}/${name}_properties.cmake")
  file(GENERATE OUTPUT "${props_file}" CONTENT
"foreach(t IN LISTS ${name}_TESTS)
  set_tests_properties(\"\${t}\" PROPERTIES
    ENVIRONMENT [==[${env}]==] LABELS [==[${ARG_LABELS}]==])
endforeach()
")
  set_property(DIRECTORY APPEND PROPERTY TEST_INCLUDE_FILES "${props_file}")
endfunction()
