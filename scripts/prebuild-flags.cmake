# Included after project() in the prebuild (CMAKE_PROJECT_INCLUDE, scripts/prebuild.sh): forces
# scripts/glibc-floor.h into every C++ and CUDA host translation unit (cmake-js owns CMAKE_CXX_FLAGS).
set(LLMK_GLIBC_FLOOR_H "${CMAKE_CURRENT_LIST_DIR}/glibc-floor.h")
add_compile_options("$<$<COMPILE_LANGUAGE:CXX>:-include${LLMK_GLIBC_FLOOR_H}>"
                    "$<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-include${LLMK_GLIBC_FLOOR_H}>")
message(STATUS "llm-kernels prebuild: glibc 2.28 floor header ${LLMK_GLIBC_FLOOR_H}")
