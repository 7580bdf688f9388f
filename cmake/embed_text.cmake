# cmake -DIN=file -DOUT=file.cpp -P embed_text.cmake: writes m3::kBuiltinTexts (the bytes of IN as unsigned char,
# NUL-terminated) and m3::kBuiltinTextsSize into OUT.
file(READ "${IN}" hex HEX)
string(LENGTH "${hex}" n)
math(EXPR size "${n} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REGEX REPLACE "((0x..,){32})" "\\1\n" bytes "${bytes}")
file(WRITE "${OUT}" "// Generated from ${IN} by cmake/embed_text.cmake; do not edit.\n#include <cstddef>\nnamespace m3 {\nextern const unsigned char kBuiltinTexts[];\nextern const size_t kBuiltinTextsSize;\nconst unsigned char kBuiltinTexts[] = {\n${bytes}0};\nconst size_t kBuiltinTextsSize = ${size};\n}  // namespace m3\n")
