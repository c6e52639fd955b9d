#!/usr/bin/env bash
# t2110-cm-tools: the tools people use, on a read-write cairnd mount and on
# a local directory, with the results compared: tar x of a tree with
# symlinks, hard links, odd names, empty files and a 3 MiB file; cp -a;
# rsync -aHX twice (the second transfers nothing); git init/add/commit/
# status/checkout/branch switch in a repository on the mount (fixed dates,
# so both sides make the same commit ids); make of a small C project (run
# it; make again does nothing; a touched source rebuilds only its object).
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 600
for t in tar rsync git make gcc; do
	command -v "$t" >/dev/null || { echo "# SKIP: no $t (tools/deps.sh installs it)"; exit 77; }
done

# The source tree for tar, cp and rsync.
src=$T_DIR/src
mkdir -p "$src/dir one/sub" "$src/ünïcødé dir" "$src/-dash dir" "$src/empty dir"
head -c $((3 * 1024 * 1024)) /dev/urandom >"$src/big3m.bin"
: >"$src/empty"
: >"$src/dir one/also empty"
echo hello >"$src/hello.txt"
echo "spaced" >"$src/dir one/name with  spaces.txt"
echo "unicode" >"$src/ünïcødé dir/fïlé ñame.txt"
echo dash >"$src/-leading-dash"
echo dash2 >"$src/-dash dir/--double"
printf 'x%.0s' $(seq 1 5000) >"$src/dir one/sub/5000x.txt"
ln "$src/hello.txt" "$src/dir one/hard2"
ln "$src/hello.txt" "$src/ünïcødé dir/hard3"
ln -s hello.txt "$src/rel-link"
ln -s "../hello.txt" "$src/dir one/up-link"
ln -s /etc/hostname "$src/abs-link"
ln -s no/such/file "$src/dangling"
ln -s "dir one" "$src/dir-link"
chmod 0600 "$src/empty"
chmod 0755 "$src/big3m.bin"
chmod 0700 "$src/dir one/sub"
chown 1234:5678 "$src/hello.txt"
setfattr -n user.note -v tools "$src/dir one/name with  spaces.txt" 2>/dev/null
touch -d '2001-02-03 04:05:06' "$src/big3m.bin"
touch -h -d '2002-03-04 05:06:07' "$src/rel-link"
tar --xattrs --xattrs-include='user.*' -C "$src" -cf "$T_DIR/src.tar" . ||
	{ echo "# cannot make the archive"; exit 99; }

# A small C project.
proj=$T_DIR/proj
mkdir -p "$proj"
cat >"$proj/a.c" <<'C'
int a(int x) { return x * 3; }
C
cat >"$proj/b.c" <<'C'
int b(int x) { return x + 4; }
C
cat >"$proj/main.c" <<'C'
#include <stdio.h>
int a(int x);
int b(int x);
int main(void) { printf("result %d\n", a(b(10))); return 0; }
C
printf 'prog: main.o a.o b.o\n\t$(CC) -o $@ main.o a.o b.o\n%%.o: %%.c\n\t$(CC) -O1 -c -o $@ $<\nclean:\n\trm -f prog *.o\n' >"$proj/Makefile"

# fixed dates: the same commits (ids) on both sides
export GIT_AUTHOR_NAME=cairn GIT_AUTHOR_EMAIL=cairn@localhost \
	GIT_COMMITTER_NAME=cairn GIT_COMMITTER_EMAIL=cairn@localhost \
	GIT_CONFIG_NOSYSTEM=1 HOME=$T_DIR/home \
	GIT_AUTHOR_DATE="2020-01-04 00:00:00 +0000" \
	GIT_COMMITTER_DATE="2020-01-04 00:00:00 +0000"
mkdir -p "$HOME"
git config --global init.defaultBranch main
git config --global safe.directory '*'
gitd() { # DATE ARGS...: git with a fixed author and committer date
	local d=$1; shift
	GIT_AUTHOR_DATE="$d +0000" GIT_COMMITTER_DATE="$d +0000" git "$@"
}

# scenario ROOT TAG: everything, under ROOT; results in $T_DIR/TAG.*
scenario() {
	local root=$1 tag=$2 r out
	mkdir -p "$root/untar" 2>>"$T_DIR/check.log" ||
		{ t_ok 1 "$tag: mkdir $root/untar"; return; }
	t_check "$tag: tar x of the archive" \
		tar --xattrs --xattrs-include='user.*' -C "$root/untar" -xpf "$T_DIR/src.tar"
	t_check "$tag: cp -a of the tree" cp -a "$src" "$root/cpa"
	t_check "$tag: rsync -aHX of the tree" rsync -aHX "$src/" "$root/rs/"
	rsync -aHX --stats "$src/" "$root/rs/" >"$T_DIR/$tag.rsync2" 2>&1
	t_check "$tag: a second rsync -aHX transfers nothing" \
		grep -q "Number of regular files transferred: 0" "$T_DIR/$tag.rsync2"

	# git
	r=$root/repo
	mkdir -p "$r"
	(
		set -e
		cd "$r"
		git init -q
		echo one >file.txt
		mkdir -p src
		echo 'int x;' >src/x.c
		gitd '2020-01-01 00:00:00' add -A
		gitd '2020-01-01 00:00:00' commit -q -m first
		echo two >>file.txt
		cp "$src/big3m.bin" src/blob.bin
		gitd '2020-01-02 00:00:00' add -A
		gitd '2020-01-02 00:00:00' commit -q -m second
	) >"$T_DIR/$tag.git1" 2>&1
	t_ok $? "$tag: git init, add, commit twice"
	out=$(cd "$r" && git status --porcelain 2>&1)
	t_is "$out" "" "$tag: git status is clean"
	t_is "$(cd "$r" && git rev-parse HEAD 2>&1)" "$(cat "$T_DIR/want.head" 2>/dev/null || (cd "$r" && git rev-parse HEAD))" \
		"$tag: HEAD is the same commit as on the other side"
	(cd "$r" && git rev-parse HEAD) >"$T_DIR/want.head" 2>/dev/null
	(cd "$r" && git checkout -q HEAD~1) >"$T_DIR/$tag.git2" 2>&1
	t_ok $? "$tag: git checkout of the older commit"
	t_is "$(cat "$r/file.txt" 2>&1)" "one" "$tag: the old content is there"
	t_is "$(ls "$r/src" 2>&1 | tr '\n' ' ')" "x.c " "$tag: and the newer file is gone"
	(
		set -e
		cd "$r"
		git checkout -q main
		git checkout -q -b feature
		echo feature >feature.txt
		gitd '2020-01-03 00:00:00' add feature.txt
		gitd '2020-01-03 00:00:00' commit -q -m feature
		git checkout -q main
	) >"$T_DIR/$tag.git3" 2>&1
	t_ok $? "$tag: git branch, commit on it, switch back"
	t_is "$(cat "$r/file.txt" 2>&1)|$([ -e "$r/feature.txt" ] && echo present || echo absent)" \
		"one
two|absent" "$tag: main has its content and not the branch's file"
	(cd "$r" && git checkout -q feature) >>"$T_DIR/$tag.git3" 2>&1
	t_is "$(cat "$r/feature.txt" 2>&1)" "feature" "$tag: switching to the branch brings its file"
	t_check "$tag: git status clean after the switches" sh -c "cd '$r' && test -z \"\$(git status --porcelain)\""
	t_check "$tag: git fsck --full" sh -c "cd '$r' && git fsck --full --no-progress"
	t_check "$tag: the 3 MiB blob round-trips" sh -c "cd '$r' && git checkout -q main && cmp src/blob.bin '$src/big3m.bin'"

	# make
	cp -a "$proj" "$root/proj" 2>/dev/null
	t_check "$tag: make" make -C "$root/proj"
	t_is "$("$root/proj/prog" 2>&1)" "result 42" "$tag: the program runs"
	out=$(make -C "$root/proj" 2>&1)
	t_ok "$(echo "$out" | grep -qE "is up to date|Nothing to be done" && echo 0 || echo 1)" \
		"$tag: make again does nothing"
	sleep 0.01
	touch "$root/proj/b.c"
	out=$(make -C "$root/proj" 2>&1)
	t_is "$(echo "$out" | grep -cE -- '-c -o [a-z]+\.o')|$(echo "$out" | grep -c -- '-o b.o')" "1|1" \
		"$tag: touching b.c rebuilds b.o only"
	t_is "$("$root/proj/prog" 2>&1)" "result 42" "$tag: the relinked program runs"
}

# What must agree between the two sides.
listing() { # DIR
	(cd "$1" && {
		find . -path ./repo/.git -prune -o ! -type d -printf '%y %m %s %n %U:%G %l|%P\n'
		find . -path ./repo/.git -prune -o -type d -printf '%y %m - %n %U:%G|%P\n'
	} | LC_ALL=C sort)
}

local_root=$T_DIR/local
mkdir -p "$local_root"
scenario "$local_root" local

vold_start || exit 99
vos init >/dev/null 2>&1
vos create tools >/dev/null 2>&1 || exit 99
make_token tools rw "$T_DIR/tok"
mnt=$T_DIR/mnt
cairnd_mount "$mnt" "$T_DIR/cache" tools "$T_DIR/tok" || exit 1
scenario "$mnt" mount

listing "$local_root" >"$T_DIR/local.list"
listing "$mnt" >"$T_DIR/mount.list" 2>&1
t_is "$(diff -u "$T_DIR/local.list" "$T_DIR/mount.list" | head -n 80)" "" \
	"find listings agree (type, mode, size, links, owner, target, name)"
# Contents: the repositories' index files hold inode numbers and ctimes,
# so they may differ; everything else must be byte-identical.
t_is "$(diff -r --no-dereference -x index "$local_root" "$mnt" 2>&1 | head -n 40)" "" \
	"diff -r of the two trees finds nothing"
t_check "the untarred tree equals the source" diff -r --no-dereference "$src" "$mnt/untar"
t_is "$(getfattr --only-values -n user.note "$mnt/untar/dir one/name with  spaces.txt" 2>/dev/null)" \
	"tools" "tar x kept a user.* xattr"
t_is "$(stat -c '%h %i' "$mnt/untar/hello.txt" 2>&1 | cut -d' ' -f1)|$( [ "$(stat -c %i "$mnt/untar/hello.txt" 2>/dev/null)" = "$(stat -c %i "$mnt/untar/ünïcødé dir/hard3" 2>/dev/null)" ] && echo same)" \
	"3|same" "tar x made hard links: one inode, three names"
t_is "$(stat -c %Y "$mnt/cpa/big3m.bin" 2>&1)" "$(stat -c %Y "$src/big3m.bin")" "cp -a kept the mtime"
t_is "$(stat -c %Y "$mnt/rs/big3m.bin" 2>&1)" "$(stat -c %Y "$src/big3m.bin")" "rsync -a kept the mtime"

# The server has it: a second mount with an empty cache lists the same.
cairnd_umount "$mnt"
cairnd_mount "$mnt" "$T_DIR/cache2" tools "$T_DIR/tok" || exit 1
listing "$mnt" >"$T_DIR/mount2.list" 2>&1
t_is "$(diff -u "$T_DIR/local.list" "$T_DIR/mount2.list" | head -n 40)" "" \
	"after a remount with an empty cache the listing still agrees"
t_check "git fsck through the fresh cache" sh -c "cd '$mnt/repo' && git fsck --full --no-progress"
cairnd_umount "$mnt"
t_done
