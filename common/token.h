/*
 * token.h - bearer tokens: mint, parse, verify; the server's secret key.
 *
 * A token is "cairn1.VOLUME.RIGHT.EXPIRY.MAC" (doc/protocol.md, "Tokens"):
 * VOLUME a volume name (proto_volname_check() rules), RIGHT "ro" or "rw",
 * EXPIRY a Unix time in seconds as plain decimal (0 = never expires), MAC
 * the 64 lower-case hex digits of HMAC-SHA256 under the server's key of
 * everything before the last '.'. The MAC is compared in constant time.
 *
 * Layer rule: common/ only; no I/O except token_key_generate() and
 * token_key_load(), which touch the key file and nothing else. All
 * functions are thread-safe (no shared state).
 */
#ifndef CAIRN_TOKEN_H
#define CAIRN_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#define TOKEN_PREFIX  "cairn1"
#define TOKEN_KEY_LEN 32   /* bytes of a key made by token_key_generate() */
#define TOKEN_KEY_MIN 16   /* shortest key token_key_load() accepts */
#define TOKEN_KEY_MAX 1024 /* longest key token_key_load() accepts */
/* Longest token: "cairn1." + 64 + ".rw." + 20 digits + "." + 64 hex + NUL. */
#define TOKEN_MAX 180

/*
 * Mint a token for volume @vol, read-write if @rw else read-only, expiring
 * at Unix time @expiry (0 = never), into @out of @outlen bytes (TOKEN_MAX
 * is always enough). @key of @keylen bytes (> 0) is the server's secret.
 * @return the token's length (without NUL), -EINVAL for a bad volume name
 * or empty key, -ENAMETOOLONG if @outlen is too small, -EIO if OpenSSL
 * fails.
 */
int token_mint(const void *key, size_t keylen, const char *vol, int rw,
	       uint64_t expiry, char *out, size_t outlen);

/*
 * Check @token (NUL-terminated, as it came after "Bearer ") for a request
 * on volume @vol that needs write access if @need_rw, at Unix time @now.
 * Checks in this order: form, MAC, expiry, then volume and right.
 * @return
 *   0        the token allows the request;
 *   -EACCES  malformed, MAC does not match, or expired (EXPIRY != 0 and
 *            EXPIRY <= @now): the caller replies 401;
 *   -EPERM   a genuine, unexpired token, but for another volume, or "ro"
 *            when @need_rw: the caller replies 403.
 */
int token_verify(const void *key, size_t keylen, const char *token,
		 const char *vol, int need_rw, uint64_t now);

/*
 * Split @tok into its parts WITHOUT checking the MAC (for display, e.g.
 * `vos token --show`, and for logging which volume a refused token named).
 * Any of @vol (@vollen bytes, 65 is enough), @rw, @expiry may be NULL.
 * The MAC must still be 64 lower-case hex digits.
 * @return 0, -EINVAL if malformed, -ENAMETOOLONG if @vollen is too small.
 */
int token_parse(const char *tok, char *vol, size_t vollen, int *rw,
		uint64_t *expiry);

/*
 * Create a new key file at @path: TOKEN_KEY_LEN random bytes (getrandom),
 * created with O_EXCL and mode 0600, written, fsynced, and the parent
 * directory fsynced. Never overwrites: an existing file is -EEXIST. On a
 * failure after creation the partial file is removed.
 * @return 0 or -errno.
 */
int token_key_generate(const char *path);

/*
 * Read the key file at @path into @key, a buffer of *@len bytes (pass
 * TOKEN_KEY_MAX); on success *@len is the key length. A file readable or
 * writable by group or others is refused with -EPERM (the key is as good
 * as a read-write token for every volume), as is anything but a regular
 * file. @return 0, -EPERM, -EINVAL (shorter than TOKEN_KEY_MIN or longer
 * than *@len), or -errno from open/read.
 */
int token_key_load(const char *path, uint8_t *key, size_t *len);

#endif /* CAIRN_TOKEN_H */
