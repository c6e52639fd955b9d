/*
 * token.c - mint and verify the bearer tokens of doc/protocol.md, and keep
 * the server's secret key in a file.
 *
 * The MAC is HMAC-SHA256 (OpenSSL) over the token text before the last '.';
 * it is compared with CRYPTO_memcmp() so the time taken tells an attacker
 * nothing about how many digits matched. This module does not know HTTP:
 * callers map -EACCES to 401 and -EPERM to 403.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "common/log.h"
#include "common/proto.h"
#include "common/token.h"
#include "common/util.h"

#define MAC_HEX 64

/* HMAC-SHA256 of @len bytes at @msg, as 64 lower-case hex digits + NUL. */
static int
mac_hex(const void *key, size_t keylen, const char *msg, size_t len,
	char out[MAC_HEX + 1])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (!key || keylen == 0 || keylen > INT32_MAX)
		return -EINVAL;
	if (!HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)msg,
		  len, md, &mdlen) ||
	    mdlen != 32)
		return -EIO;
	util_hex_encode(md, 32, out);
	OPENSSL_cleanse(md, sizeof(md));
	return 0;
}

int
token_mint(const void *key, size_t keylen, const struct token_info *ti,
	   char *out, size_t outlen)
{
	char mac[MAC_HEX + 1];
	int n, m, rc;

	if (!ti || proto_volname_check(ti->vol) || ti->volid == 0)
		return -EINVAL;
	n = snprintf(out, outlen,
		     TOKEN_PREFIX ".%s.%08" PRIx32 ".%" PRIu64 ".%s.%" PRIu64,
		     ti->vol, ti->volid, ti->epoch, ti->rw ? "rw" : "ro",
		     ti->expiry);
	if (n < 0)
		return -EINVAL;
	if ((size_t)n + 1 + MAC_HEX >= outlen)
		return -ENAMETOOLONG;
	rc = mac_hex(key, keylen, out, (size_t)n, mac);
	if (rc)
		return rc;
	m = snprintf(out + n, outlen - (size_t)n, ".%s", mac);
	return n + m;
}

/* The field that ends at @end (exclusive) and starts after the previous
 * '.', which must lie after @min. @return its start or NULL. */
static const char *
field_back(const char *min, const char *end)
{
	const char *f = end;

	while (f > min && f[-1] != '.')
		f--;
	if (f <= min + 1 || f[-1] != '.')
		return NULL;
	return f;
}

/* Plain decimal of [@f, @end), no leading zeros, into *v. */
static int
dec_field(const char *f, const char *end, uint64_t *v)
{
	size_t el = (size_t)(end - f), i;
	uint64_t e = 0;

	if (el == 0 || el > 20)
		return -EINVAL;
	for (i = 0; i < el; i++) {
		char c = f[i];

		if (c < '0' || c > '9' || (i == 0 && c == '0' && el > 1))
			return -EINVAL;
		if (e > (UINT64_MAX - (uint64_t)(c - '0')) / 10)
			return -EINVAL;
		e = e * 10 + (uint64_t)(c - '0');
	}
	*v = e;
	return 0;
}

/*
 * Split @tok. On success *body_len is the length of the signed part and
 * *mac points at the 64 hex digits. Strict: the parts must be exactly as
 * token_mint() writes them (no leading zeros, lower-case hex), so one
 * grant has one spelling. Volume names may contain '.', so the fields are
 * taken from the end, where their shapes are fixed.
 */
static int
split(const char *tok, struct token_info *ti, size_t *body_len,
      const char **mac)
{
	const char *p, *v, *f;
	struct token_info t = {0};
	size_t vl, i;

	if (!tok || strnlen(tok, TOKEN_MAX) >= TOKEN_MAX)
		return -EINVAL;
	if (!strncmp(tok, TOKEN_PREFIX ".", sizeof(TOKEN_PREFIX)))
		t.version = 2;
	else if (!strncmp(tok, TOKEN_PREFIX_V1 ".", sizeof(TOKEN_PREFIX_V1)))
		t.version = 1;
	else
		return -EINVAL;
	v = tok + sizeof(TOKEN_PREFIX); /* both prefixes are 6 long */
	/* MAC */
	p = strrchr(tok, '.');
	if (!p || p < v || strlen(p + 1) != MAC_HEX)
		return -EINVAL;
	for (i = 1; i <= MAC_HEX; i++)
		if (!((p[i] >= '0' && p[i] <= '9') ||
		      (p[i] >= 'a' && p[i] <= 'f')))
			return -EINVAL;
	*mac = p + 1;
	*body_len = (size_t)(p - tok);
	/* EXPIRY */
	f = field_back(v - 1, p);
	if (!f || dec_field(f, p, &t.expiry))
		return -EINVAL;
	p = f - 1;
	/* RIGHT */
	f = field_back(v - 1, p);
	if (!f || p - f != 2 || f[0] != 'r' || (f[1] != 'o' && f[1] != 'w'))
		return -EINVAL;
	t.rw = f[1] == 'w';
	p = f - 1;
	if (t.version == 2) {
		/* EPOCH */
		f = field_back(v - 1, p);
		if (!f || dec_field(f, p, &t.epoch))
			return -EINVAL;
		p = f - 1;
		/* VOLID: exactly 8 lower-case hex digits, not all zero. */
		f = field_back(v - 1, p);
		if (!f || p - f != 8)
			return -EINVAL;
		for (i = 0; i < 8; i++) {
			char c = f[i];

			if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
				return -EINVAL;
			t.volid = (t.volid << 4) |
				  (uint32_t)(c <= '9' ? c - '0' : c - 'a' + 10);
		}
		if (t.volid == 0)
			return -EINVAL;
		p = f - 1;
	}
	/* VOLUME: what is left between the prefix and p. */
	vl = (size_t)(p - v);
	if (p < v || vl == 0 || vl >= sizeof(t.vol))
		return -EINVAL;
	memcpy(t.vol, v, vl);
	t.vol[vl] = 0;
	if (proto_volname_check(t.vol))
		return -EINVAL;
	if (ti)
		*ti = t;
	return 0;
}

int
token_parse(const char *tok, struct token_info *ti)
{
	const char *mac;
	size_t blen;

	return split(tok, ti, &blen, &mac);
}

int
token_verify(const void *key, size_t keylen, const char *token, uint64_t now,
	     struct token_info *ti)
{
	char want[MAC_HEX + 1];
	struct token_info t;
	const char *mac;
	size_t blen;
	int rc;

	if (split(token, &t, &blen, &mac) || t.version != 2)
		return -EACCES;
	rc = mac_hex(key, keylen, token, blen, want);
	if (rc)
		return -EACCES;
	if (CRYPTO_memcmp(want, mac, MAC_HEX))
		return -EACCES;
	if (t.expiry != 0 && t.expiry <= now)
		return -EACCES;
	if (ti)
		*ti = t;
	return 0;
}

int
token_allows(const struct token_info *ti, const char *vol, uint32_t volid,
	     uint64_t epoch, int need_rw)
{
	if (!ti || !vol || strcmp(vol, ti->vol))
		return -EPERM;
	if (ti->volid != volid || ti->epoch != epoch)
		return -ESTALE;
	if (need_rw && !ti->rw)
		return -EPERM;
	return 0;
}

int
token_key_generate(const char *path)
{
	uint8_t key[TOKEN_KEY_LEN];
	size_t got = 0;
	ssize_t n;
	int fd, rc = 0;

	while (got < sizeof(key)) {
		n = getrandom(key + got, sizeof(key) - got, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		got += (size_t)n;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
		  0600);
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	/* The umask cannot widen 0600, but fchmod makes it exact anyway. */
	if (fchmod(fd, 0600) < 0 || fsync(fd) < 0)
		rc = -errno;
	if (!rc)
		rc = util_write_all(fd, key, sizeof(key));
	if (!rc && fsync(fd) < 0)
		rc = -errno;
	if (close(fd) < 0 && !rc)
		rc = -errno;
	if (!rc)
		rc = util_fsync_parent(path);
	if (rc)
		unlink(path);
out:
	OPENSSL_cleanse(key, sizeof(key));
	return rc;
}

int
token_key_load(const char *path, uint8_t *key, size_t *len)
{
	char why[512];
	struct stat st;
	ssize_t n;
	int fd, rc = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		goto out;
	}
	/* The same rule as cairnd's token file: the key mints every token. */
	rc = util_check_secret_file(fd, path, why, sizeof(why));
	if (rc) {
		if (rc == -EPERM)
			log_err(LOG_MAIN, "cannot use key file '%s': %s", path,
				why);
		goto out;
	}
	if (st.st_size < TOKEN_KEY_MIN || (uint64_t)st.st_size > *len) {
		rc = -EINVAL;
		goto out;
	}
	n = util_pread_all(fd, key, (size_t)st.st_size, 0);
	if (n < 0) {
		rc = (int)n;
		goto out;
	}
	if (n != st.st_size) {
		rc = -EINVAL;
		goto out;
	}
	*len = (size_t)n;
out:
	close(fd);
	return rc;
}
