#include "db_params.h"

void db_params_init(struct db_params *p, const struct wapi_config *cfg, const char *application_name)
{
    int i = 0;
    p->keys[i] = "dbname", p->values[i++] = cfg->database.url; /* expanded: may be a full URI */
    if (cfg->database.password && *cfg->database.password)
        p->keys[i] = "password", p->values[i++] = cfg->database.password;
    p->keys[i] = "application_name", p->values[i++] = application_name;
    p->keys[i] = "connect_timeout", p->values[i++] = "5";
    p->keys[i] = NULL, p->values[i] = NULL;
}
