/* Minimal unit-test harness: each check prints one "PASS: name" or
 * "FAIL: name (file:line: detail)" line; scripts/test.sh counts them. */
#ifndef WAPI_T_H
#define WAPI_T_H
#include <stdio.h>
#include <string.h>

static int t_failed, t_passed;

#define T_CHECK(cond, name)                                                                        \
    do {                                                                                           \
        if (cond) {                                                                                \
            t_passed++;                                                                            \
            printf("PASS: %s\n", (name));                                                          \
        } else {                                                                                   \
            t_failed++;                                                                            \
            printf("FAIL: %s (%s:%d: %s)\n", (name), __FILE__, __LINE__, #cond);                   \
        }                                                                                          \
        fflush(stdout);                                                                            \
    } while (0)

#define T_EQ_INT(a, b, name)                                                                       \
    do {                                                                                           \
        long long t_a_ = (long long)(a), t_b_ = (long long)(b);                                    \
        if (t_a_ == t_b_) {                                                                        \
            t_passed++;                                                                            \
            printf("PASS: %s\n", (name));                                                          \
        } else {                                                                                   \
            t_failed++;                                                                            \
            printf("FAIL: %s (%s:%d: %lld != %lld)\n", (name), __FILE__, __LINE__, t_a_, t_b_);    \
        }                                                                                          \
        fflush(stdout);                                                                            \
    } while (0)

#define T_EQ_STR(a, b, name)                                                                       \
    do {                                                                                           \
        const char *t_a_ = (a), *t_b_ = (b);                                                       \
        if (t_a_ && t_b_ && strcmp(t_a_, t_b_) == 0) {                                             \
            t_passed++;                                                                            \
            printf("PASS: %s\n", (name));                                                          \
        } else {                                                                                   \
            t_failed++;                                                                            \
            printf("FAIL: %s (%s:%d: \"%s\" != \"%s\")\n", (name), __FILE__, __LINE__,             \
                   t_a_ ? t_a_ : "(null)", t_b_ ? t_b_ : "(null)");                                \
        }                                                                                          \
        fflush(stdout);                                                                            \
    } while (0)

#define T_DONE() return t_failed ? 1 : 0

#endif
