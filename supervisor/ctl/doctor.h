/* wapictl doctor: checks an installation before (and while) it goes live. */
#ifndef WAPI_CTL_DOCTOR_H
#define WAPI_CTL_DOCTOR_H

/* Prints one line per check; 0 when none fails, 1 otherwise, 2 on usage. */
int ctl_doctor(const char *config_path, const char *sock, int argc, char **argv);

#endif
