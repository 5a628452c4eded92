include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

install(TARGETS memres memres_static EXPORT memresTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(DIRECTORY include/memres DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT memresTargets NAMESPACE memres:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/memres)
configure_package_config_file(cmake/memresConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/memresConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/memres)
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/memresConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMajorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/memresConfig.cmake
              ${CMAKE_CURRENT_BINARY_DIR}/memresConfigVersion.cmake
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/memres)
if(MEMRES_HAVE_CUDA)
  set(MEMRES_PC_LIBS_PRIVATE "-L${CUDAToolkit_LIBRARY_DIR} -lcudart_static -ldl -lrt -lpthread")
  set(MEMRES_PC_CFLAGS "-I${CUDAToolkit_INCLUDE_DIRS}")
else()
  set(MEMRES_PC_LIBS_PRIVATE "-lpthread")
  set(MEMRES_PC_CFLAGS "")
endif()
configure_file(cmake/memres.pc.in ${CMAKE_CURRENT_BINARY_DIR}/memres.pc @ONLY)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/memres.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
