# worker.cmake — the psworker training program and its parts (included by
# worker/CMakeLists.txt): data readers (zlib for gzip'd IDX), built-in models, the
# training loop, its progress lines and bar and the output writers in ps_worker_core; the
# program itself in psworker.

# The lines of text data files (regular files only, 1 MiB a line at most):
# the one line reader under the dense readers (dataset.c) and the sparse ones
# (sparse_data.c).
add_library(ps_line_reader STATIC ${CMAKE_CURRENT_LIST_DIR}/line_reader.c)
target_include_directories(ps_line_reader PUBLIC ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(ps_line_reader PUBLIC ps_common)
ps_target_warnings(ps_line_reader)

add_library(ps_worker_core STATIC
            ${CMAKE_CURRENT_LIST_DIR}/dataset.c
            ${CMAKE_CURRENT_LIST_DIR}/model.c
            ${CMAKE_CURRENT_LIST_DIR}/output.c
            ${CMAKE_CURRENT_LIST_DIR}/predict.c
            ${CMAKE_CURRENT_LIST_DIR}/progress.c
            ${CMAKE_CURRENT_LIST_DIR}/sparse_model.c
            ${CMAKE_CURRENT_LIST_DIR}/sparse_step.c
            ${CMAKE_CURRENT_LIST_DIR}/trainer.c)
target_include_directories(ps_worker_core PUBLIC ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(ps_worker_core PUBLIC ps_client ps_config ps_common ps_line_reader ps_report
                                            PkgConfig::OPENBLAS PkgConfig::ZLIB m)
ps_target_warnings(ps_worker_core)

# The target name psworker is taken by the shared client library
# (libpsworker.so); the program is psworker_bin, installed as bin/psworker.
add_executable(psworker_bin ${CMAKE_CURRENT_LIST_DIR}/psworker_main.c)
set_target_properties(psworker_bin PROPERTIES OUTPUT_NAME psworker)
target_link_libraries(psworker_bin PRIVATE ps_worker_core)
ps_target_warnings(psworker_bin)
install(TARGETS psworker_bin RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

# The sparse models' data: the criteo and libsvm64 readers and streams in
# ps_sparse_data (keys are XXH3 hashes of features: libxxhash, Debian's
# libxxhash-dev), which the training loop links through ps_worker_core; the
# click-log generator in ps_clickgen and its program psgen.
pkg_check_modules(XXHASH REQUIRED IMPORTED_TARGET libxxhash)
add_library(ps_sparse_data STATIC ${CMAKE_CURRENT_LIST_DIR}/sparse_data.c
            ${CMAKE_CURRENT_LIST_DIR}/feature_hash.c)
target_include_directories(ps_sparse_data PUBLIC ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(ps_sparse_data PUBLIC ps_config ps_common ps_line_reader PkgConfig::XXHASH m)
# the same log buckets on every machine: IEEE operations one at a time, never fused
set_source_files_properties(${CMAKE_CURRENT_LIST_DIR}/feature_hash.c PROPERTIES COMPILE_OPTIONS
                            -ffp-contract=off)
ps_target_warnings(ps_sparse_data)
target_link_libraries(ps_worker_core PUBLIC ps_sparse_data)

add_library(ps_clickgen STATIC ${CMAKE_CURRENT_LIST_DIR}/clickgen.c)
target_include_directories(ps_clickgen PUBLIC ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(ps_clickgen PUBLIC ps_sparse_data ps_common ps_report m)
# the same rows on every machine: IEEE operations one at a time, never fused
target_compile_options(ps_clickgen PRIVATE -ffp-contract=off)
ps_target_warnings(ps_clickgen)

# psgen libsvm: the sparse readers' rows in liblinear's format, keys numbered
# densely by an open-addressing map (the reference of sparse_logistic's
# accuracy, tests/bench/sparse_accuracy.py)
add_library(ps_liblinear_export STATIC ${CMAKE_CURRENT_LIST_DIR}/keymap.c
            ${CMAKE_CURRENT_LIST_DIR}/liblinear_export.c)
target_include_directories(ps_liblinear_export PUBLIC ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(ps_liblinear_export PUBLIC ps_sparse_data ps_common ps_report)
ps_target_warnings(ps_liblinear_export)

add_executable(psgen ${CMAKE_CURRENT_LIST_DIR}/psgen.c)
target_link_libraries(psgen PRIVATE ps_clickgen ps_liblinear_export)
ps_target_warnings(psgen)
install(TARGETS psgen RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
