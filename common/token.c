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
token_mint(const void *key, size_t keylen, const char *vol, int rw,
	   uint64_t expiry, char *out, size_t outlen)
{
	char mac[MAC_HEX + 1];
	int n, m, rc;

	if (proto_volname_check(vol))
		return -EINVAL;
	n = snprintf(out, outlen, TOKEN_PREFIX ".%s.%s.%" PRIu64, vol,
		     rw ? "rw" : "ro", expiry);
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

/*
 * Split @tok. On success *body_len is the length of the signed part and
 * *mac points at the 64 hex digits. Strict: the parts must be exactly as
 * token_mint() writes them (no leading zeros, lower-case hex), so one
 * grant has one spelling.
 */
static int
split(const char *tok, char *vol, size_t vollen, int *rw, uint64_t *expiry,
      size_t *body_len, const char **mac)
{
	const char *p, *dot, *v;
	size_t vl, el, i;
	uint64_t e = 0;
	char vbuf[65];

	if (!tok || strncmp(tok, TOKEN_PREFIX ".", sizeof(TOKEN_PREFIX)))
		return -EINVAL;
	if (strnlen(tok, TOKEN_MAX) >= TOKEN_MAX)
		return -EINVAL;
	/* VOLUME */
	v = tok + sizeof(TOKEN_PREFIX);
	dot = strchr(v, '.');
	/* Volume names may contain '.', so find RIGHT from the end instead:
	 * VOLUME.RIGHT.EXPIRY.MAC with the last three fixed in shape. */
	p = strrchr(tok, '.');
	if (!dot || !p || strlen(p + 1) != MAC_HEX)
		return -EINVAL;
	for (i = 1; i <= MAC_HEX; i++)
		if (!((p[i] >= '0' && p[i] <= '9') ||
		      (p[i] >= 'a' && p[i] <= 'f')))
			return -EINVAL;
	*mac = p + 1;
	*body_len = (size_t)(p - tok);
	/* EXPIRY: digits back to the previous '.'. */
	el = 0;
	while (p - el - 1 > v && p[-(ptrdiff_t)el - 1] != '.')
		el++;
	if (el == 0 || el > 20 || p - el - 1 <= v)
		return -EINVAL;
	for (i = 0; i < el; i++) {
		char c = p[-(ptrdiff_t)el + (ptrdiff_t)i];

		if (c < '0' || c > '9' || (i == 0 && c == '0' && el > 1))
			return -EINVAL;
		if (e > (UINT64_MAX - (uint64_t)(c - '0')) / 10)
			return -EINVAL;
		e = e * 10 + (uint64_t)(c - '0');
	}
	p -= el + 1; /* p at the '.' before EXPIRY */
	if (p - 3 < v || p[-3] != '.' ||
	    !(p[-2] == 'r' && (p[-1] == 'o' || p[-1] == 'w')))
		return -EINVAL;
	vl = (size_t)(p - 3 - v);
	if (vl == 0 || vl >= sizeof(vbuf))
		return -EINVAL;
	memcpy(vbuf, v, vl);
	vbuf[vl] = 0;
	if (proto_volname_check(vbuf))
		return -EINVAL;
	if (vol) {
		if (vl >= vollen)
			return -ENAMETOOLONG;
		memcpy(vol, vbuf, vl + 1);
	}
	if (rw)
		*rw = p[-1] == 'w';
	if (expiry)
		*expiry = e;
	return 0;
}

int
token_parse(const char *tok, char *vol, size_t vollen, int *rw,
	    uint64_t *expiry)
{
	const char *mac;
	size_t blen;

	return split(tok, vol, vollen, rw, expiry, &blen, &mac);
}

int
token_verify(const void *key, size_t keylen, const char *token, const char *vol,
	     int need_rw, uint64_t now)
{
	char tvol[65], want[MAC_HEX + 1];
	const char *mac;
	uint64_t expiry;
	size_t blen;
	int rw, rc;

	if (split(token, tvol, sizeof(tvol), &rw, &expiry, &blen, &mac))
		return -EACCES;
	rc = mac_hex(key, keylen, token, blen, want);
	if (rc)
		return -EACCES;
	if (CRYPTO_memcmp(want, mac, MAC_HEX))
		return -EACCES;
	if (expiry != 0 && expiry <= now)
		return -EACCES;
	if (!vol || strcmp(vol, tvol))
		return -EPERM;
	if (need_rw && !rw)
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
	if (!S_ISREG(st.st_mode)) {
		log_err(LOG_MAIN,
			"cannot use key file '%s': not a regular file", path);
		rc = -EPERM;
		goto out;
	}
	if (st.st_mode & 077) {
		log_err(LOG_MAIN,
			"cannot use key file '%s': mode %04o lets others read "
			"or change it (chmod 600)",
			path, (unsigned)(st.st_mode & 07777));
		rc = -EPERM;
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
