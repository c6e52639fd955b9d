/*
 * token.h - bearer tokens: mint, parse, verify; the server's secret key.
 *
 * A token is "cairn2.VOLUME.VOLID.EPOCH.RIGHT.EXPIRY.MAC" (doc/protocol.md,
 * "Tokens"): VOLUME a volume name (proto_volname_check() rules), VOLID the
 * volume's id as 8 lower-case hex digits, EPOCH the volume's token epoch
 * when the token was minted (plain decimal), RIGHT "ro" or "rw", EXPIRY a
 * Unix time in seconds as plain decimal (0 = never expires), MAC the 64
 * lower-case hex digits of HMAC-SHA256 under the server's key of
 * everything before the last '.'. The MAC is compared in constant time.
 * VOLID and EPOCH bind the token to one volume's life: a volume removed
 * and made again under the same name has another id, and `vos revoke`
 * moves the epoch on, so older tokens stop working without a new key.
 *
 * Old "cairn1.VOLUME.RIGHT.EXPIRY.MAC" tokens (no id, no epoch) still
 * parse, for display, but never verify: they cannot be revoked.
 *
 * Layer rule: common/ only; no I/O except token_key_generate() and
 * token_key_load(), which touch the key file and nothing else. All
 * functions are thread-safe (no shared state).
 */
#ifndef CAIRN_TOKEN_H
#define CAIRN_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#define TOKEN_PREFIX	"cairn2"
#define TOKEN_PREFIX_V1 "cairn1" /* parsed for display, never verified */
#define TOKEN_KEY_LEN 32   /* bytes of a key made by token_key_generate() */
#define TOKEN_KEY_MIN 16   /* shortest key token_key_load() accepts */
#define TOKEN_KEY_MAX 1024 /* longest key token_key_load() accepts */
/* Longest token: "cairn2." + 64 + "." + 8 + "." + 20 + ".rw." + 20 + "."
 * + 64 hex + NUL = 192. */
#define TOKEN_MAX 200

/* What a token says (token_parse(), token_verify()), or what to mint. */
struct token_info {
	int version;	 /* 2; 1 for an old token (parse only) */
	char vol[65];	 /* volume name */
	uint32_t volid;	 /* volume id (version 2) */
	uint64_t epoch;	 /* the volume's token epoch (version 2) */
	int rw;		 /* 1 read-write, 0 read-only */
	uint64_t expiry; /* Unix seconds, 0 = never */
};

/*
 * Mint a version-2 token for @ti (vol, volid, epoch, rw, expiry; version
 * is ignored) into @out of @outlen bytes (TOKEN_MAX is always enough).
 * @key of @keylen bytes (> 0) is the server's secret.
 * @return the token's length (without NUL), -EINVAL for a bad volume name,
 * a zero volid or an empty key, -ENAMETOOLONG if @outlen is too small,
 * -EIO if OpenSSL fails.
 */
int token_mint(const void *key, size_t keylen, const struct token_info *ti,
	       char *out, size_t outlen);

/*
 * Check @token (NUL-terminated, as it came after "Bearer ") at Unix time
 * @now: form, version, MAC and expiry, in this order. On success @ti (may
 * be NULL) holds what the token says; then token_allows() decides whether
 * it fits the request.
 * @return 0, or -EACCES (malformed, an old-format token, MAC does not
 * match, or expired: EXPIRY != 0 and EXPIRY <= @now): the caller replies
 * 401.
 */
int token_verify(const void *key, size_t keylen, const char *token,
		 uint64_t now, struct token_info *ti);

/*
 * Does the verified token @ti allow a request on volume @vol, whose id is
 * @volid and token epoch @epoch, that needs write access if @need_rw?
 * @return
 *   0        yes;
 *   -EPERM   the token names another volume, or is "ro" and @need_rw:
 *            the caller replies 403;
 *   -ESTALE  the token names this volume but another id or epoch: the
 *            volume was made again or its tokens were revoked since. The
 *            caller replies 401 (the token is no longer good at all).
 */
int token_allows(const struct token_info *ti, const char *vol, uint32_t volid,
		 uint64_t epoch, int need_rw);

/*
 * Split @tok into its parts WITHOUT checking the MAC (for display and for
 * logging what a refused token named). Accepts version 2 and the old
 * version 1 (then volid and epoch are 0). The MAC must still be 64
 * lower-case hex digits. @ti may be NULL.
 * @return 0, -EINVAL if malformed.
 */
int token_parse(const char *tok, struct token_info *ti);

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
 * TOKEN_KEY_MAX); on success *@len is the key length. The file is opened
 * with O_NOFOLLOW and must pass util_check_secret_file(): a file of
 * another user, readable or writable by group or others, or anything but
 * a regular file is refused with -EPERM and a log line saying the fix (the
 * key is as good as a read-write token for every volume).
 * @return 0, -EPERM, -EINVAL (shorter than TOKEN_KEY_MIN or longer than
 * *@len), or -errno from open/read.
 */
int token_key_load(const char *path, uint8_t *key, size_t *len);

#endif /* CAIRN_TOKEN_H */
