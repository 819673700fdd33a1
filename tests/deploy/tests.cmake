# deploy/: the Kubernetes manifests and the seccomp profile, checked offline, and the image in
# podman (included from tests/CMakeLists.txt).
add_test(NAME deploy_manifests
         COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/deploy/check_manifests.py ${PROJECT_SOURCE_DIR})

# The image in podman with the documented flags, and without each of the two permissions it
# needs beyond podman's defaults (tests/deploy/container_test.sh). The first run on a machine
# builds the image from Debian's packages (scripts/image.sh, from this build tree's .deb);
# the tree's binary is then mounted into it. Root only; it skips (exit 77, the reason
# printed) where podman cannot run a container, or without the image and deb.debian.org.
add_test(NAME container
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/deploy/container_test.sh $<TARGET_FILE:pycell>)
set_tests_properties(container PROPERTIES TIMEOUT 900 SKIP_RETURN_CODE 77
                     ENVIRONMENT "BUILD_DIR=${PROJECT_BINARY_DIR}")
