/*
 * test_token.c - unit tests of bearer tokens (common/token.c): mint and
 * verify, every way a token can be wrong, and the key file rules.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/token.h"
#include "tests/tap.h"

static const uint8_t key[32] = "0123456789abcdef0123456789abcdef";
static const uint8_t key2[32] = "0123456789abcdef0123456789abcdeF";

/* A copy of @tok with byte @i replaced by @c. */
static char *
mutate(const char *tok, size_t i, char c)
{
	static char buf[TOKEN_MAX + 10];

	snprintf(buf, sizeof(buf), "%s", tok);
	buf[i] = c;
	return buf;
}

/* A token_info for volume @vol, id 0x1234abcd, epoch 42. */
static struct token_info
info(const char *vol, int rw, uint64_t expiry)
{
	struct token_info ti = {
		.volid = 0x1234abcd, .epoch = 42, .rw = rw, .expiry = expiry};

	snprintf(ti.vol, sizeof(ti.vol), "%s", vol);
	return ti;
}

static void
test_mint_verify(void)
{
	struct token_info ti, got;
	char tok[TOKEN_MAX];
	int n;

	ti = info("home", 1, 0);
	n = token_mint(key, sizeof(key), &ti, tok, sizeof(tok));
	is_int(n, (int)strlen(tok), "mint returns the length");
	ok(!strncmp(tok, "cairn2.home.1234abcd.42.rw.0.", 29) &&
		   strlen(tok) == 29 + 64,
	   "minted text: cairn2.VOLUME.VOLID.EPOCH.RIGHT.EXPIRY.MAC");
	memset(&got, 0, sizeof(got));
	is_int(token_verify(key, sizeof(key), tok, 1700000000, &got), 0,
	       "verify");
	ok(got.version == 2 && !strcmp(got.vol, "home") &&
		   got.volid == 0x1234abcd && got.epoch == 42 && got.rw == 1 &&
		   got.expiry == 0,
	   "verify reports what the token says");
	is_int(token_allows(&got, "home", 0x1234abcd, 42, 1), 0,
	       "rw token allows a write");
	is_int(token_allows(&got, "home", 0x1234abcd, 42, 0), 0,
	       "rw token allows a read");
	is_int(token_allows(&got, "other", 0x1234abcd, 42, 0), -EPERM,
	       "other volume name: EPERM");
	is_int(token_allows(&got, "hom", 0x1234abcd, 42, 0), -EPERM,
	       "prefix of the name: EPERM");
	is_int(token_allows(&got, NULL, 0x1234abcd, 42, 0), -EPERM,
	       "NULL volume: EPERM");
	is_int(token_allows(&got, "home", 0x1234abce, 42, 0), -ESTALE,
	       "same name, another volume id (made again): ESTALE");
	is_int(token_allows(&got, "home", 0x1234abcd, 43, 0), -ESTALE,
	       "epoch moved on (vos revoke): ESTALE");
	is_int(token_allows(&got, "home", 0x1234abcd, 41, 0), -ESTALE,
	       "an epoch from the future is not honoured either");
	is_int(token_verify(key2, sizeof(key2), tok, 1700000000, NULL), -EACCES,
	       "other key: EACCES");
	is_int(token_verify(key, 31, tok, 1700000000, NULL), -EACCES,
	       "key prefix: EACCES");
	memset(&got, 0, sizeof(got));
	is_int(token_parse(tok, &got), 0, "parse");
	ok(!strcmp(got.vol, "home") && got.rw == 1 && got.volid == 0x1234abcd &&
		   got.epoch == 42,
	   "parse fields");
	is_int(token_parse(tok, NULL), 0, "parse, no outputs");

	ti = info("home", 0, 2000);
	token_mint(key, sizeof(key), &ti, tok, sizeof(tok));
	is_int(token_verify(key, sizeof(key), tok, 1999, &got), 0,
	       "ro token before expiry");
	is_int(token_allows(&got, "home", 0x1234abcd, 42, 1), -EPERM,
	       "ro token for a write: EPERM");
	is_int(token_verify(key, sizeof(key), tok, 2000, NULL), -EACCES,
	       "expired at EXPIRY");
	is_int(token_verify(key, sizeof(key), tok, 5000, NULL), -EACCES,
	       "expired after");
	is_int(token_parse(tok, &got), 0, "parse ro");
	ok(got.rw == 0 && got.expiry == 2000, "ro fields");

	/* Volume names may hold dots, even ones that look like fields. */
	ti = info("a.rw.5.0000abcd", 0, 18446744073709551615ull);
	ti.epoch = 18446744073709551615ull;
	n = token_mint(key, sizeof(key), &ti, tok, sizeof(tok));
	ok(n > 0, "mint with a dotted volume name, max expiry and epoch");
	is_int(token_verify(key, sizeof(key), tok, 1, &got), 0,
	       "verify dotted");
	ok(!strcmp(got.vol, "a.rw.5.0000abcd") && got.rw == 0 &&
		   got.expiry == 18446744073709551615ull &&
		   got.epoch == 18446744073709551615ull,
	   "dotted fields");
	/* The longest volume name fits TOKEN_MAX. */
	memset(ti.vol, 'v', 64);
	ti.vol[64] = 0;
	ti.rw = 1;
	ti.volid = 0xffffffff;
	n = token_mint(key, sizeof(key), &ti, tok, sizeof(tok));
	ok(n > 0 && n < TOKEN_MAX, "longest token fits TOKEN_MAX (%d)", n);
	is_int(token_verify(key, sizeof(key), tok, 1, NULL), 0,
	       "longest token verifies");

	ti = info(".bad", 1, 0);
	is_int(token_mint(key, sizeof(key), &ti, tok, sizeof(tok)), -EINVAL,
	       "bad volume name");
	ti = info("a/b", 1, 0);
	is_int(token_mint(key, sizeof(key), &ti, tok, sizeof(tok)), -EINVAL,
	       "slash in volume name");
	ti = info("home", 1, 0);
	ti.volid = 0;
	is_int(token_mint(key, sizeof(key), &ti, tok, sizeof(tok)), -EINVAL,
	       "volume id 0");
	ti = info("home", 1, 0);
	is_int(token_mint(key, 0, &ti, tok, sizeof(tok)), -EINVAL, "empty key");
	is_int(token_mint(key, sizeof(key), &ti, tok, 93), -ENAMETOOLONG,
	       "buffer one short");
	is_int(token_mint(key, sizeof(key), &ti, tok, 94), 93,
	       "mint into an exact buffer");
}

/* An old-format token: parsed for display, never honoured. */
static void
test_v1(void)
{
	/* cairn1.home.rw.0 with the MAC cairn 0.1 gave it under @key. */
	char old[TOKEN_MAX];
	struct token_info got;

	snprintf(old, sizeof(old), "cairn1.home.rw.0.%064d", 0);
	memset(&got, 0, sizeof(got));
	is_int(token_parse(old, &got), 0, "an old-format token parses");
	ok(got.version == 1 && !strcmp(got.vol, "home") && got.rw == 1 &&
		   got.volid == 0,
	   "old-format fields (version 1, no id)");
	is_int(token_verify(key, sizeof(key), old, 1, NULL), -EACCES,
	       "an old-format token never verifies");
}

static void
test_malformed(void)
{
	static const char *const bad[] = {
		"",
		"cairn2",
		"cairn2.",
		"cairn2.home",
		"cairn2.home.0000abcd",
		"cairn2.home.0000abcd.5.rw",
		"cairn2.home.0000abcd.5.rw.0",
		"cairn2.home.0000abcd.5.rw.0.",
		"cairn3.home.0000abcd.5.rw.0."
		"00000000000000000000000000000000000000000000000000000000000000"
		"00",
		"cairn2.home.0000abcd.5.rx.0."
		"00000000000000000000000000000000000000000000000000000000000000"
		"00",
		"cairn2.home.0000abcd.5.RW.0."
		"00000000000000000000000000000000000000000000000000000000000000"
		"00",
		"cairn2..0000abcd.5.rw.0."
		"00000000000000000000000000000000000000000000000000000000000000"
		"00",
		"cairn2..home.0000abcd.5.rw.0."
		"00000000000000000000000000000000000000000000000000000000000000"
		"00",
		"cairn2.home.0000abcd.5.rw.."
		"00000000000000000000000000000000000000000000000000000000000000"
		"00",
		"cairn2.home.0000abcd.5.rw.01."
		"00000000000000000000000000000000000000000000000000000000000000"
		"00",
		"cairn2.home.0000abcd.5.rw.-1."
		"00000000000000000000000000000000000000000000000000000000000000"
		"00",
		"cairn2.home.0000abcd.5.rw.+1."
		"00000000000000000000000000000000000000000000000000000000000000"
		"00",
		"cairn2.home.0000abcd.5.rw.18446744073709551616."
		"00000000000000000000000000000000000000000000000000000000000000"
		"00",
		"cairn2.home.0000ABCD.5.rw.0."
		"00000000000000000000000000000000000000000000000000000000000000"
		"00",
		"cairn2.home.abcd.5.rw.0."
		"00000000000000000000000000000000000000000000000000000000000000"
		"00",
		"cairn2.home.000000abcd.5.rw.0."
		"00000000000000000000000000000000000000000000000000000000000000"
		"00",
		"cairn2.home.00000000.5.rw.0."
		"00000000000000000000000000000000000000000000000000000000000000"
		"00",
		"cairn2.home.0000abcd.05.rw.0."
		"00000000000000000000000000000000000000000000000000000000000000"
		"00",
		"cairn2.home.0000abcd..rw.0."
		"00000000000000000000000000000000000000000000000000000000000000"
		"00",
		"cairn2.home.0000abcd.x.rw.0."
		"00000000000000000000000000000000000000000000000000000000000000"
		"00",
		"cairn2.0000abcd.5.rw.0."
		"00000000000000000000000000000000000000000000000000000000000000"
		"00",
		"cairn2.home.5.rw.0."
		"00000000000000000000000000000000000000000000000000000000000000"
		"00",
		"cairn2.ho me.0000abcd.5.rw.0."
		"00000000000000000000000000000000000000000000000000000000000000"
		"00",
		"cairn1..rw.0."
		"00000000000000000000000000000000000000000000000000000000000000"
		"00",
		"cairn1.home.rx.0."
		"00000000000000000000000000000000000000000000000000000000000000"
		"00",
		"cairn2.home.0000abcd.5.rw.0."
		"00000000000000000000000000000000000000000000000000000000000000"
		"0",
		"cairn2.home.0000abcd.5.rw.0."
		"00000000000000000000000000000000000000000000000000000000000000"
		"000",
		"cairn2.home.0000abcd.5.rw.0."
		"00000000000000000000000000000000000000000000000000000000000000"
		"0G",
		"cairn2.home.0000abcd.5.rw.0."
		"00000000000000000000000000000000000000000000000000000000000000"
		"0A",
		"cairn2.home.0000abcd.5.rw.0."
		"00000000000000000000000000000000000000000000000000000000000000"
		"00 ",
		" cairn2.home.0000abcd.5.rw.0."
		"00000000000000000000000000000000000000000000000000000000000000"
		"00"};
	struct token_info ti = info("home", 1, 0);
	char tok[TOKEN_MAX], good[TOKEN_MAX], *m;
	size_t i, len;
	int fails = 0;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		is_int(token_verify(key, sizeof(key), bad[i], 1, NULL), -EACCES,
		       "malformed %zu is EACCES", i);
		if (i >= 8)
			is_int(token_parse(bad[i], NULL), -EINVAL,
			       "malformed %zu does not parse", i);
	}
	is_int(token_verify(key, sizeof(key), NULL, 1, NULL), -EACCES,
	       "NULL token");

	token_mint(key, sizeof(key), &ti, good, sizeof(good));
	len = strlen(good);
	/* Flipping any single byte of the token must make it invalid. */
	for (i = 0; i < len; i++) {
		m = mutate(good, i, good[i] == 'a' ? 'b' : 'a');
		if (token_verify(key, sizeof(key), m, 1, NULL) != -EACCES) {
			diag("byte %zu: %s accepted", i, m);
			fails++;
		}
	}
	is_int(fails, 0, "every one-byte change is refused");
	/* The ro twin with the rw MAC is a forgery. */
	strcpy(tok, good);
	m = strstr(tok, ".rw.");
	m[2] = 'o';
	is_int(token_verify(key, sizeof(key), tok, 1, NULL), -EACCES,
	       "rw MAC on a ro token refused");
	/* So is the same grant moved to a newer epoch. */
	strcpy(tok, good);
	m = strstr(tok, ".42.");
	m[2] = '3';
	is_int(token_verify(key, sizeof(key), tok, 1, NULL), -EACCES,
	       "old MAC on a newer epoch refused");
	/* Truncations. */
	fails = 0;
	for (i = 0; i < len; i++) {
		strcpy(tok, good);
		tok[i] = 0;
		if (token_verify(key, sizeof(key), tok, 1, NULL) != -EACCES)
			fails++;
	}
	is_int(fails, 0, "every truncation is refused");
	/* A very long string. */
	{
		char *big = malloc(100000);

		memset(big, 'a', 99999);
		big[99999] = 0;
		memcpy(big, "cairn2.", 7);
		is_int(token_verify(key, sizeof(key), big, 1, NULL), -EACCES,
		       "100 kB token refused");
		free(big);
	}
}

static void
test_keyfile(void)
{
	char dir[] = "/tmp/cairn-token-XXXXXX", path[128], path2[128];
	uint8_t k[TOKEN_KEY_MAX], k2[TOKEN_KEY_MAX];
	size_t len, len2;
	struct stat st;
	int fd;

	if (!mkdtemp(dir)) {
		skip(12, "mkdtemp failed");
		return;
	}
	snprintf(path, sizeof(path), "%s/key", dir);
	snprintf(path2, sizeof(path2), "%s/key2", dir);
	is_int(token_key_generate(path), 0, "generate");
	ok(stat(path, &st) == 0 && (st.st_mode & 07777) == 0600 &&
		   st.st_size == TOKEN_KEY_LEN,
	   "key file is 0600 and 32 bytes");
	is_int(token_key_generate(path), -EEXIST, "never overwrites");
	len = sizeof(k);
	is_int(token_key_load(path, k, &len), 0, "load");
	is_int(len, TOKEN_KEY_LEN, "loaded length");
	token_key_generate(path2);
	len2 = sizeof(k2);
	token_key_load(path2, k2, &len2);
	ok(memcmp(k, k2, TOKEN_KEY_LEN), "two keys differ");

	chmod(path, 0640);
	len = sizeof(k);
	is_int(token_key_load(path, k, &len), -EPERM,
	       "group-readable key refused");
	chmod(path, 0604);
	is_int(token_key_load(path, k, &len), -EPERM,
	       "world-readable key refused");
	chmod(path, 0600);
	len = 16;
	is_int(token_key_load(path, k, &len), -EINVAL,
	       "key longer than the buffer");
	unlink(path2);
	fd = open(path2, O_WRONLY | O_CREAT | O_EXCL, 0600);
	if (fd >= 0) {
		if (write(fd, "short", 5) != 5)
			diag("short write");
		close(fd);
	}
	len = sizeof(k);
	is_int(token_key_load(path2, k, &len), -EINVAL, "5-byte key refused");
	is_int(token_key_load(dir, k, &len), -EPERM, "a directory is refused");
	snprintf(path2, sizeof(path2), "%s/link", dir);
	if (symlink(path, path2) == 0) {
		len = sizeof(k);
		is_int(token_key_load(path2, k, &len), -ELOOP,
		       "a symbolic link to a good key is refused");
		unlink(path2);
	} else {
		skip(1, "symlink failed");
	}
	if (geteuid() == 0 && chown(path, 65534, 65534) == 0) {
		len = sizeof(k);
		is_int(token_key_load(path, k, &len), -EPERM,
		       "a key owned by another user is refused");
		if (chown(path, 0, 0) != 0)
			diag("chown back failed");
	} else {
		skip(1, "not root: cannot give the key to another user");
	}
	snprintf(path2, sizeof(path2), "%s/none", dir);
	is_int(token_key_load(path2, k, &len), -ENOENT, "missing key file");

	unlink(path);
	snprintf(path2, sizeof(path2), "%s/key2", dir);
	unlink(path2);
	rmdir(dir);
}

int
main(void)
{
	/* Key-file refusals log an error line; keep test output clean. */
	log_init("test_token", 0, LOG_CRIT);
	test_mint_verify();
	test_v1();
	test_malformed();
	test_keyfile();
	return done_testing();
}
