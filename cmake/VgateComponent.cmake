# vgate_component(NAME SOURCES file... [LIBS lib...]): one static library per dataplane/control component.
# It registers itself in the global property VGATE_COMPONENTS so that tests, fuzzers and benchmarks link every
# component without a shared list that every folder would have to edit.
function(vgate_component name)
  cmake_parse_arguments(ARG "" "" "SOURCES;LIBS" ${ARGN})
  set(target vgate_${name})
  add_library(${target} STATIC ${ARG_SOURCES})
  target_compile_options(${target} PRIVATE ${VGATE_WARNINGS})
  target_include_directories(${target} PUBLIC ${CMAKE_SOURCE_DIR} ${CMAKE_SOURCE_DIR}/include)
  target_link_libraries(${target} PUBLIC vgate_headers ${ARG_LIBS})
  set_property(GLOBAL APPEND PROPERTY VGATE_COMPONENTS ${target})
endfunction()

# All components, in the order they were declared (later ones may depend on earlier ones).
function(vgate_all_components out)
  get_property(components GLOBAL PROPERTY VGATE_COMPONENTS)
  set(${out} ${components} PARENT_SCOPE)
endfunction()
