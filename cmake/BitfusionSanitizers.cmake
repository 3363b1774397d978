# ASan + UBSan for every target in the tree when BITFUSION_SANITIZE is on.
if(BITFUSION_SANITIZE)
  set(_bitfusion_san -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  add_compile_options(${_bitfusion_san})
  add_link_options(${_bitfusion_san})
endif()
