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

static void
test_mint_verify(void)
{
	char tok[TOKEN_MAX], vol[65];
	uint64_t exp;
	int rw, n;

	n = token_mint(key, sizeof(key), "home", 1, 0, tok, sizeof(tok));
	ok(n > 0 && (size_t)n == strlen(tok), "mint rw returns the length");
	ok(!strncmp(tok, "cairn1.home.rw.0.", 17) && strlen(tok) == 17 + 64,
	   "token shape: %s", tok);
	is_int(token_verify(key, sizeof(key), tok, "home", 1, 1700000000), 0,
	       "rw token allows rw");
	is_int(token_verify(key, sizeof(key), tok, "home", 0, 1700000000), 0,
	       "rw token allows ro");
	is_int(token_verify(key, sizeof(key), tok, "other", 0, 1700000000),
	       -EPERM, "other volume is EPERM");
	is_int(token_verify(key, sizeof(key), tok, "hom", 0, 1700000000),
	       -EPERM, "volume prefix is EPERM");
	is_int(token_verify(key, sizeof(key), tok, NULL, 0, 1700000000), -EPERM,
	       "NULL volume is EPERM");
	is_int(token_verify(key2, sizeof(key2), tok, "home", 0, 1700000000),
	       -EACCES, "other key is EACCES");
	is_int(token_verify(key, 31, tok, "home", 0, 1700000000), -EACCES,
	       "shorter key is EACCES");
	is_int(token_parse(tok, vol, sizeof(vol), &rw, &exp), 0, "parse");
	ok(!strcmp(vol, "home") && rw == 1 && exp == 0, "parse parts");
	is_int(token_parse(tok, vol, 4, &rw, &exp), -ENAMETOOLONG,
	       "parse with short buffer");
	is_int(token_parse(tok, NULL, 0, NULL, NULL), 0, "parse, no outputs");

	n = token_mint(key, sizeof(key), "home", 0, 2000, tok, sizeof(tok));
	ok(n > 0, "mint ro with expiry");
	is_int(token_verify(key, sizeof(key), tok, "home", 0, 1999), 0,
	       "ro allows ro before expiry");
	is_int(token_verify(key, sizeof(key), tok, "home", 1, 1999), -EPERM,
	       "ro on a mutation is EPERM");
	is_int(token_verify(key, sizeof(key), tok, "home", 0, 2000), -EACCES,
	       "expired at EXPIRY");
	is_int(token_verify(key, sizeof(key), tok, "home", 0, 5000), -EACCES,
	       "expired later");
	is_int(token_verify(key, sizeof(key), tok, "other", 0, 5000), -EACCES,
	       "expiry is checked before the volume");
	is_int(token_parse(tok, vol, sizeof(vol), &rw, &exp), 0, "parse ro");
	ok(rw == 0 && exp == 2000, "ro parts");

	/* Volume names may contain dots, even ones that look like parts. */
	n = token_mint(key, sizeof(key), "a.rw.5", 0, 18446744073709551615ull,
		       tok, sizeof(tok));
	ok(n > 0, "mint for a dotted volume, max expiry");
	is_int(token_verify(key, sizeof(key), tok, "a.rw.5", 0, 1), 0,
	       "dotted volume verifies");
	is_int(token_verify(key, sizeof(key), tok, "a.rw.5", 1, 1), -EPERM,
	       "dotted volume is still ro");
	is_int(token_parse(tok, vol, sizeof(vol), &rw, &exp), 0,
	       "parse dotted");
	ok(!strcmp(vol, "a.rw.5") && !rw && exp == UINT64_MAX, "dotted parts");

	is_int(token_mint(key, sizeof(key), ".bad", 1, 0, tok, sizeof(tok)),
	       -EINVAL, "mint refuses a bad volume name");
	is_int(token_mint(key, sizeof(key), "a/b", 1, 0, tok, sizeof(tok)),
	       -EINVAL, "mint refuses a slash");
	is_int(token_mint(key, 0, "home", 1, 0, tok, sizeof(tok)), -EINVAL,
	       "mint refuses an empty key");
	is_int(token_mint(key, sizeof(key), "home", 1, 0, tok, 80),
	       -ENAMETOOLONG, "mint into a short buffer");
	is_int(token_mint(key, sizeof(key), "home", 1, 0, tok, 82), 81,
	       "mint into an exact buffer");
}

static void
test_malformed(void)
{
	static const char *const bad[] = {
		"",
		"cairn1",
		"cairn1.",
		"cairn1.home",
		"cairn1.home.rw",
		"cairn1.home.rw.0",
		"cairn1.home.rw.0.",
		"cairn2.home.rw.0."
		"00000000000000000000000000000000000000000000000000000000000000"
		"00",
		"cairn1.home.rx.0."
		"00000000000000000000000000000000000000000000000000000000000000"
		"00",
		"cairn1.home.RW.0."
		"00000000000000000000000000000000000000000000000000000000000000"
		"00",
		"cairn1..rw.0."
		"00000000000000000000000000000000000000000000000000000000000000"
		"00",
		"cairn1..home.rw.0."
		"00000000000000000000000000000000000000000000000000000000000000"
		"00",
		"cairn1.home.rw.."
		"00000000000000000000000000000000000000000000000000000000000000"
		"00",
		"cairn1.home.rw.01."
		"00000000000000000000000000000000000000000000000000000000000000"
		"00",
		"cairn1.home.rw.-1."
		"00000000000000000000000000000000000000000000000000000000000000"
		"00",
		"cairn1.home.rw.+1."
		"00000000000000000000000000000000000000000000000000000000000000"
		"00",
		"cairn1.home.rw.18446744073709551616."
		"00000000000000000000000000000000000000000000000000000000000000"
		"00",
		"cairn1.home.rw.0."
		"00000000000000000000000000000000000000000000000000000000000000"
		"0",
		"cairn1.home.rw.0."
		"00000000000000000000000000000000000000000000000000000000000000"
		"000",
		"cairn1.home.rw.0."
		"00000000000000000000000000000000000000000000000000000000000000"
		"0G",
		"cairn1.home.rw.0."
		"00000000000000000000000000000000000000000000000000000000000000"
		"0A",
		"cairn1.ho me.rw.0."
		"00000000000000000000000000000000000000000000000000000000000000"
		"00",
		"cairn1.home.rw.0."
		"00000000000000000000000000000000000000000000000000000000000000"
		"00 ",
		" cairn1.home.rw.0."
		"00000000000000000000000000000000000000000000000000000000000000"
		"00",
	};
	char tok[TOKEN_MAX], good[TOKEN_MAX], *m;
	size_t i, len;
	int fails = 0;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		is_int(token_verify(key, sizeof(key), bad[i], "home", 0, 1),
		       -EACCES, "malformed %zu is EACCES", i);
		if (i >= 7)
			is_int(token_parse(bad[i], NULL, 0, NULL, NULL),
			       -EINVAL, "malformed %zu does not parse", i);
	}
	is_int(token_verify(key, sizeof(key), NULL, "home", 0, 1), -EACCES,
	       "NULL token");

	token_mint(key, sizeof(key), "home", 1, 0, good, sizeof(good));
	len = strlen(good);
	/* Flipping any single byte of the token must make it invalid. */
	for (i = 0; i < len; i++) {
		m = mutate(good, i, good[i] == 'a' ? 'b' : 'a');
		if (token_verify(key, sizeof(key), m, "home", 0, 1) !=
		    -EACCES) {
			diag("byte %zu: %s accepted", i, m);
			fails++;
		}
	}
	is_int(fails, 0, "every one-byte change is refused");
	/* The ro twin with the rw MAC is a forgery. */
	strcpy(tok, good);
	tok[12] = 'r';
	tok[13] = 'o';
	is_int(token_verify(key, sizeof(key), tok, "home", 0, 1), -EACCES,
	       "rw MAC on a ro token refused");
	/* Truncations. */
	fails = 0;
	for (i = 0; i < len; i++) {
		strcpy(tok, good);
		tok[i] = 0;
		if (token_verify(key, sizeof(key), tok, "home", 0, 1) !=
		    -EACCES)
			fails++;
	}
	is_int(fails, 0, "every truncation is refused");
	/* A very long string. */
	{
		char *big = malloc(100000);

		memset(big, 'a', 99999);
		big[99999] = 0;
		memcpy(big, "cairn1.", 7);
		is_int(token_verify(key, sizeof(key), big, "home", 0, 1),
		       -EACCES, "100 kB token refused");
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
	test_malformed();
	test_keyfile();
	return done_testing();
}
