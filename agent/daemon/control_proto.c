#include "control_proto.h"

#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

int control_request_parse(char *buf, size_t len, struct control_request *req,
			  const char **why)
{
	char *nl = memchr(buf, '\n', len);
	json_object *o, *v;
	int rc = -1;

	memset(req, 0, sizeof(*req));
	if (nl == NULL) {
		*why = "request line missing or too long";
		return -1;
	}
	*nl = '\0';
	o = json_tokener_parse(buf);
	if (o == NULL || !json_object_is_type(o, json_type_object) ||
	    !json_object_object_get_ex(o, "cmd", &v) ||
	    !json_object_is_type(v, json_type_string) ||
	    json_object_get_string_len(v) >= (int)sizeof(req->cmd)) {
		*why = "not a JSON request";
		goto out;
	}
	snprintf(req->cmd, sizeof(req->cmd), "%s", json_object_get_string(v));
	if (json_object_object_get_ex(o, "identity", &v) ||
	    json_object_object_get_ex(o, "token", &v)) {
		if (!json_object_is_type(v, json_type_string) ||
		    json_object_get_string_len(v) >= (int)sizeof(req->arg)) {
			*why = "bad name";
			goto out;
		}
		snprintf(req->arg, sizeof(req->arg), "%s", json_object_get_string(v));
	}
	if (json_object_object_get_ex(o, "pinentry", &v))
		req->pinentry = json_object_get_boolean(v);
	if (json_object_object_get_ex(o, "tty", &v)) {
		if (!json_object_is_type(v, json_type_string) ||
		    json_object_get_string_len(v) >= (int)sizeof(req->tty)) {
			*why = "bad tty";
			goto out;
		}
		snprintf(req->tty, sizeof(req->tty), "%s", json_object_get_string(v));
	}
	if (json_object_object_get_ex(o, "term", &v)) {
		if (!json_object_is_type(v, json_type_string) ||
		    json_object_get_string_len(v) >= (int)sizeof(req->term)) {
			*why = "bad term";
			goto out;
		}
		snprintf(req->term, sizeof(req->term), "%s", json_object_get_string(v));
	}
	req->pin = nl + 1;
	req->pin_len = 0;
	while (req->pin + req->pin_len < buf + len &&
	       req->pin[req->pin_len] != '\n' && req->pin[req->pin_len] != '\r')
		req->pin_len++;
	rc = 0;
out:
	if (o != NULL)
		json_object_put(o);
	return rc;
}
