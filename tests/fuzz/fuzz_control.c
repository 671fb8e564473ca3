/* libFuzzer: the control socket's request parser (the agent's side). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "control_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char buf[CONTROL_REQUEST_MAX + 1];
	struct control_request req;
	const char *why;

	if (size > CONTROL_REQUEST_MAX)
		size = CONTROL_REQUEST_MAX;
	memcpy(buf, data, size);
	buf[size] = '\0';
	(void)control_request_parse(buf, size, &req, &why);
	return 0;
}
