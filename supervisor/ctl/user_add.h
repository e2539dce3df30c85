/* wapictl user add: creates a user directly in PostgreSQL (the same hash
 * and the same registration function the workers use). */
#ifndef WAPI_CTL_USER_ADD_H
#define WAPI_CTL_USER_ADD_H

/* argv: "add", EMAIL, options; the password is read from standard input.
 * Prints one JSON line; returns the exit status. */
int ctl_user(const char *config_path, int argc, char **argv);

#endif
