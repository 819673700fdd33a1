# deploy/: the Kubernetes manifests and the seccomp profile, checked offline (included from
# tests/CMakeLists.txt). The container test (tests/deploy/container_test.sh) needs the image
# scripts/image.sh builds (minutes, and downloads): run it by hand, it is not registered.
add_test(NAME deploy_manifests
         COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/deploy/check_manifests.py ${PROJECT_SOURCE_DIR})
