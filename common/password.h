/* Password hashing, byte-compatible with Better Auth (better-auth/crypto):
 * scrypt(NFKC(password), salt, N=16384, r=16, p=1, dkLen=64) where salt is
 * the 32-character hex string of 16 random bytes, used as is; stored as
 * "<salt hex>:<key hex>". CPU- and memory-heavy (~16 MiB, tens of ms): call
 * it off any event loop. */
#ifndef WAPI_PASSWORD_H
#define WAPI_PASSWORD_H
#include <stddef.h>

#define PASSWORD_HASH_LEN 162 /* 32 + 1 + 128 characters and a NUL */
#define PASSWORD_MAX_BYTES 1024 /* input bound before normalisation (128 characters are at most 512 bytes) */

/* NFKC normalisation of UTF-8; returns a malloc'd string (*outlen set) or
 * NULL when the input is not valid UTF-8 or memory runs out. */
char *password_nfkc(const char *pw, size_t len, size_t *outlen);
/* A new hash of pw into out; 0 or -1. */
int password_hash(const char *pw, size_t len, char out[PASSWORD_HASH_LEN]);
/* 1 when pw matches stored, 0 when not (also for a malformed stored hash,
 * after spending the same work), -1 on an internal error. */
int password_verify(const char *stored, const char *pw, size_t len);

#endif
