# Conan 2 recipe for bitfusion, written against Conan 2's recipe reference: the conanfile
# attributes and methods (docs.conan.io/2/reference/conanfile.html), and package_info() with
# cpp_info.components, requires and the cmake_target_name / cmake_file_name / pkg_config_name
# properties (docs.conan.io/2/examples/conanfile/package_info/components.html).
#
# It cannot be run on the project's Debian CI machines (Conan comes from PyPI, which is not
# reachable there), so CI only checks that it parses; what it packages is what CMake installs,
# and that install, its CMake package config with components and its pkg-config files are
# exercised by scripts/test.sh (consumers built against the installed tree).
#
#   conan create conan/ -o "bitfusion/*:with_postgres=False"
from conan import ConanFile
from conan.tools.cmake import CMake, CMakeDeps, CMakeToolchain, cmake_layout
from conan.tools.files import copy


class BitfusionConan(ConanFile):
    name = "bitfusion"
    version = "0.1.0"
    license = "Apache-2.0"
    description = "Heterogeneous hardware and container benchmarking library"
    topics = ("benchmarking", "containers", "gpu", "fpga", "provisioning", "metrics")
    settings = "os", "arch", "compiler", "build_type"
    # The library is shared only: backends register themselves from static initialisers, and a
    # component is a shared library loaded for the schemes it registers.
    options = {"shared": [True], "with_postgres": [True, False]}
    default_options = {"shared": True, "with_postgres": True}
    exports_sources = ("CMakeLists.txt", "cmake/*", "include/*", "src/*", "examples/*",
                       "bindings/*")

    def requirements(self):
        # Public headers use boost::system::result, so Boost's headers reach consumers.
        self.requires("boost/1.81.0", transitive_headers=True)
        self.requires("openssl/[>=3 <4]")
        self.requires("libcurl/[>=7.88 <9]")
        self.requires("cereal/1.3.2")
        self.requires("sqlite3/[>=3.40 <4]")
        self.requires("zlib/[>=1.2.13 <2]")
        self.requires("re2/20220601")  # Debian 12's; later ones need Abseil
        if self.options.with_postgres:
            self.requires("libpq/[>=15 <17]")

    def build_requirements(self):
        self.tool_requires("cmake/[>=3.25]")

    def layout(self):
        cmake_layout(self, src_folder="..")

    def generate(self):
        CMakeDeps(self).generate()
        tc = CMakeToolchain(self)
        tc.cache_variables["BITFUSION_BUILD_TESTS"] = False
        tc.cache_variables["BITFUSION_BUILD_BENCHMARKS"] = False
        tc.cache_variables["BITFUSION_BUILD_PYTHON"] = False
        tc.cache_variables["BITFUSION_WITH_POSTGRES"] = bool(self.options.with_postgres)
        tc.generate()

    def build(self):
        cmake = CMake(self)
        cmake.configure()
        cmake.build()

    def package(self):
        CMake(self).install()
        copy(self, "README.md", self.source_folder, self.package_folder)

    def package_info(self):
        # The same names as the CMake package config the install writes: find_package(bitfusion
        # CONFIG COMPONENTS postgres), targets bitfusion::bitfusion and bitfusion::postgres;
        # pkg-config names bitfusion and bitfusion-postgres.
        self.cpp_info.set_property("cmake_file_name", "bitfusion")
        self.cpp_info.set_property("pkg_config_name", "bitfusion-all")

        core = self.cpp_info.components["core"]
        core.set_property("cmake_target_name", "bitfusion::bitfusion")
        core.set_property("pkg_config_name", "bitfusion")
        core.libs = ["bitfusion"]
        core.requires = ["boost::headers", "openssl::crypto", "libcurl::curl", "cereal::cereal",
                         "sqlite3::sqlite3", "zlib::zlib", "re2::re2"]
        core.system_libs = ["pthread", "dl"]
        core.bindirs = ["bin"]

        if self.options.with_postgres:
            postgres = self.cpp_info.components["postgres"]
            postgres.set_property("cmake_target_name", "bitfusion::postgres")
            postgres.set_property("pkg_config_name", "bitfusion-postgres")
            postgres.libs = ["bitfusion_postgres"]
            postgres.requires = ["core", "libpq::pq"]
            # Linked for the scheme it registers, with no symbol a consumer names: keep it
            # NEEDED where the toolchain links --as-needed.
            postgres.sharedlinkflags = ["-Wl,--no-as-needed"]
            postgres.exelinkflags = ["-Wl,--no-as-needed"]
