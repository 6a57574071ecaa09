# Install rules and the CMake package, so that another project can
#   find_package(MoEMLIR REQUIRED CONFIG)
#   target_link_libraries(app PRIVATE MoEMLIR::MLIRMoEDialect)
include(CMakePackageConfigHelpers)

install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/moe
                  ${PROJECT_SOURCE_DIR}/include/moe-runtime
  DESTINATION include
  FILES_MATCHING PATTERN "*.h" PATTERN "*.td")
install(DIRECTORY ${PROJECT_BINARY_DIR}/include/moe
  DESTINATION include
  FILES_MATCHING PATTERN "*.inc")

install(TARGETS ${MOE_EXPORTED_LIBS}
  EXPORT MoEMLIRTargets
  ARCHIVE DESTINATION lib
  LIBRARY DESTINATION lib
  INCLUDES DESTINATION include)
install(EXPORT MoEMLIRTargets
  NAMESPACE MoEMLIR::
  DESTINATION lib/cmake/MoEMLIR)

set(MOE_INSTALL_INCLUDE_DIR include)
configure_package_config_file(
  ${PROJECT_SOURCE_DIR}/cmake/MoEMLIRConfig.cmake.in
  ${PROJECT_BINARY_DIR}/cmake/MoEMLIRConfig.cmake
  INSTALL_DESTINATION lib/cmake/MoEMLIR
  PATH_VARS MOE_INSTALL_INCLUDE_DIR)
write_basic_package_version_file(
  ${PROJECT_BINARY_DIR}/cmake/MoEMLIRConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES
  ${PROJECT_BINARY_DIR}/cmake/MoEMLIRConfig.cmake
  ${PROJECT_BINARY_DIR}/cmake/MoEMLIRConfigVersion.cmake
  DESTINATION lib/cmake/MoEMLIR)
