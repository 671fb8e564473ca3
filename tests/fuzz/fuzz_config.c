/* libFuzzer: the configuration parser, including the policy sections. */
#include <stddef.h>
#include <stdint.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mtls_error err;
	struct config *c = NULL;

	if (config_parse("fuzz.conf", (const char *)data, size, &c, &err) ==
	    MTLS_OK)
		config_free(c);
	return 0;
}
