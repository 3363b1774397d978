# Conan 2 recipe for bitfusion. Conan is not installable on the project's Debian CI machines
# (PyPI is unreachable there), so this recipe is not exercised by CI; the CMake package config
# it relies on is (scripts/test.sh builds a consumer against the installed tree).
from conan import ConanFile
from conan.tools.cmake import CMake, CMakeDeps, CMakeToolchain, cmake_layout
from conan.tools.files import copy


class BitfusionConan(ConanFile):
    name = "bitfusion"
    version = "0.1.0"
    license = "Apache-2.0"
    description = "Heterogeneous hardware and container benchmarking library"
    settings = "os", "arch", "compiler", "build_type"
    options = {"shared": [True]}
    default_options = {"shared": True, "boost/*:without_python": True}
    exports_sources = ("CMakeLists.txt", "cmake/*", "include/*", "src/*", "examples/*")

    def requirements(self):
        self.requires("boost/1.81.0", transitive_headers=True)
        self.requires("openssl/[>=3 <4]")
        self.requires("libcurl/[>=7.88 <9]")
        self.requires("cereal/1.3.2")
        self.requires("sqlite3/[>=3.40 <4]")

    def build_requirements(self):
        self.tool_requires("cmake/[>=3.25]")

    def layout(self):
        cmake_layout(self, src_folder="..")

    def generate(self):
        CMakeDeps(self).generate()
        tc = CMakeToolchain(self)
        tc.variables["BITFUSION_BUILD_TESTS"] = False
        tc.variables["BITFUSION_BUILD_BENCHMARKS"] = False
        tc.generate()

    def build(self):
        cmake = CMake(self)
        cmake.configure()
        cmake.build()

    def package(self):
        CMake(self).install()
        copy(self, "README.md", self.source_folder, self.package_folder)

    def package_info(self):
        self.cpp_info.set_property("cmake_file_name", "bitfusion")
        self.cpp_info.set_property("cmake_target_name", "bitfusion::bitfusion")
        self.cpp_info.libs = ["bitfusion"]
