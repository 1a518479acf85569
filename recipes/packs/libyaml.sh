#!/bin/sh
# libyaml: the YAML parser behind PyYAML's C loader. Debian's source is a
# git export without a generated configure; the library is seven C files,
# compiled here directly (as its CMakeLists.txt does).
set -eu
. "$REFINE_WS/recipes/lib/pack.sh"
cd "$(unpack "$(source_file 'libyaml_*.orig.tar.*')")"
major=${REFINE_VERSION%%.*}
rest=${REFINE_VERSION#*.}
minor=${rest%%.*}
patch=${rest#*.}
soname=libyaml-0.so.2
mkdir -p "$REFINE_OUT/lib/pkgconfig" "$REFINE_OUT/include"
gcc $CFLAGS -O2 -fPIC -shared -Iinclude \
    -DYAML_VERSION_MAJOR="$major" -DYAML_VERSION_MINOR="$minor" -DYAML_VERSION_PATCH="$patch" \
    -DYAML_VERSION_STRING="\"$REFINE_VERSION\"" \
    src/api.c src/dumper.c src/emitter.c src/loader.c src/parser.c src/reader.c src/scanner.c src/writer.c \
    -Wl,-soname,$soname -o "$REFINE_OUT/lib/$soname.0.9"
ln -s "$soname.0.9" "$REFINE_OUT/lib/$soname"
ln -s "$soname" "$REFINE_OUT/lib/libyaml.so"
cp include/yaml.h "$REFINE_OUT/include/"
cat > "$REFINE_OUT/lib/pkgconfig/yaml-0.1.pc" <<PC
prefix=\${pcfiledir}/../..
libdir=\${prefix}/lib
includedir=\${prefix}/include

Name: LibYAML
Description: Library to parse and emit YAML
Version: $REFINE_VERSION
Cflags: -I\${includedir}
Libs: -L\${libdir} -lyaml
PC
pack_relocate
