#include "der.h"

#include <string.h>

void der_init(struct der *d, const uint8_t *p, size_t len)
{
	d->p = p;
	d->len = p == NULL ? 0 : len;
	d->depth = 0;
}

int der_empty(const struct der *d)
{
	return d->len == 0;
}

int der_peek(const struct der *d)
{
	return d->len == 0 ? -1 : d->p[0];
}

/* X.690 8.1.3 with DER's 10.1: definite form only, the fewest octets
 * (no long form under 128, no leading zero octet), at most 4 of them. */
static int read_length(const uint8_t *p, size_t avail, size_t *hdr,
		       size_t *len)
{
	size_t n, v = 0;

	if (avail < 1)
		return -1;
	if (p[0] < 0x80) {
		*hdr = 1;
		*len = p[0];
		return 0;
	}
	n = p[0] & 0x7f;
	if (n == 0 || n > 4 || n >= avail) /* 0x80: indefinite */
		return -1;
	if (p[1] == 0)
		return -1;
	for (size_t i = 1; i <= n; i++)
		v = (v << 8) | p[i];
	if (v < 0x80)
		return -1;
	*hdr = 1 + n;
	*len = v;
	return 0;
}

int der_next(struct der *d, struct der_tlv *t)
{
	size_t hdr, len;

	if (d->len < 2)
		return -1;
	/* X.509 uses tag numbers under 31 only: the high-tag form is refused. */
	if ((d->p[0] & 0x1f) == 0x1f)
		return -1;
	if (read_length(d->p + 1, d->len - 1, &hdr, &len) != 0)
		return -1;
	if (len > d->len - 1 - hdr)
		return -1;
	t->tag = d->p[0];
	t->tlv = d->p;
	t->tlv_len = 1 + hdr + len;
	t->val = d->p + 1 + hdr;
	t->len = len;
	d->p += t->tlv_len;
	d->len -= t->tlv_len;
	return 0;
}

int der_expect(struct der *d, unsigned tag, struct der_tlv *t)
{
	struct der save = *d;

	if (der_peek(d) != (int)tag || der_next(d, t) != 0) {
		*d = save;
		return -1;
	}
	return 0;
}

int der_optional(struct der *d, unsigned tag, struct der_tlv *t)
{
	if (der_peek(d) != (int)tag)
		return 0;
	return der_next(d, t) == 0 ? 1 : -1;
}

int der_sub(const struct der *parent, const struct der_tlv *t,
	    struct der *sub)
{
	if (parent->depth + 1 > DER_DEPTH_MAX)
		return -1;
	sub->p = t->val;
	sub->len = t->len;
	sub->depth = parent->depth + 1;
	return 0;
}

int der_enter(struct der *d, unsigned tag, struct der *sub,
	      struct der_tlv *t)
{
	struct der_tlv tmp;

	if (t == NULL)
		t = &tmp;
	if (d->depth + 1 > DER_DEPTH_MAX || der_expect(d, tag, t) != 0)
		return -1;
	return der_sub(d, t, sub);
}

int der_integer(struct der *d, struct der_tlv *t)
{
	if (der_expect(d, DER_INTEGER, t) != 0 || t->len == 0)
		return -1;
	return 0;
}

int der_small_uint(struct der *d, unsigned tag, int *v)
{
	struct der_tlv t;
	unsigned long x = 0;

	if (der_expect(d, tag, &t) != 0 || t.len == 0 || t.len > 4)
		return -1;
	if (t.val[0] & 0x80) /* negative */
		return -1;
	if (t.len > 1 && t.val[0] == 0 && !(t.val[1] & 0x80))
		return -1; /* X.690 8.3.2: not minimal */
	for (size_t i = 0; i < t.len; i++)
		x = (x << 8) | t.val[i];
	if (x > 0x7fffffffUL)
		return -1;
	*v = (int)x;
	return 0;
}

int der_oid(struct der *d, struct der_tlv *t)
{
	if (der_expect(d, DER_OID, t) != 0 || t->len == 0)
		return -1;
	return 0;
}

int der_octets(struct der *d, struct der_tlv *t)
{
	return der_expect(d, DER_OCTET_STRING, t);
}

int der_bits(struct der *d, struct der_tlv *t)
{
	if (der_expect(d, DER_BIT_STRING, t) != 0 || t->len < 1 ||
	    t->val[0] != 0)
		return -1;
	t->val++;
	t->len--;
	return 0;
}

int der_bool(struct der *d, int *v)
{
	struct der_tlv t;

	if (der_expect(d, DER_BOOLEAN, &t) != 0 || t.len != 1)
		return -1;
	if (t.val[0] != 0x00 && t.val[0] != 0xff) /* X.690 11.1 */
		return -1;
	*v = t.val[0] == 0xff;
	return 0;
}

int der_null(struct der *d)
{
	struct der_tlv t;

	return der_expect(d, DER_NULL, &t) == 0 && t.len == 0 ? 0 : -1;
}

static int digits(const uint8_t *p, size_t n, int *v)
{
	int x = 0;

	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		x = x * 10 + (p[i] - '0');
	}
	*v = x;
	return 0;
}

static int leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian), by counting whole
 * years and months: plain and obviously right for years 0..9999. */
static int64_t days_since_epoch(int y, int m, int d)
{
	static const int mdays[12] = { 31, 28, 31, 30, 31, 30,
				       31, 31, 30, 31, 30, 31 };
	int64_t days = 0;

	/* 400 years are 146097 days: step by them, then by single years. */
	int q = (y - 1970) / 400;
	int yy = 1970 + q * 400;

	days += (int64_t)q * 146097;
	for (; yy < y; yy++)
		days += leap(yy) ? 366 : 365;
	for (; yy > y; yy--)
		days -= leap(yy - 1) ? 366 : 365;
	for (int i = 1; i < m; i++)
		days += mdays[i - 1] + (i == 2 && leap(y));
	return days + d - 1;
}

int der_time_parse(unsigned tag, const uint8_t *p, size_t len, int64_t *t)
{
	int y, mo, d, h, mi, s, yd;
	size_t yl;

	if (tag == DER_UTC_TIME && len == 13)
		yl = 2;
	else if (tag == DER_GEN_TIME && len == 15)
		yl = 4;
	else
		return -1;
	if (p[len - 1] != 'Z' || digits(p, yl, &y) != 0 ||
	    digits(p + yl, 2, &mo) != 0 || digits(p + yl + 2, 2, &d) != 0 ||
	    digits(p + yl + 4, 2, &h) != 0 || digits(p + yl + 6, 2, &mi) != 0 ||
	    digits(p + yl + 8, 2, &s) != 0)
		return -1;
	if (yl == 2) /* RFC 5280 4.1.2.5.1 */
		y += y < 50 ? 2000 : 1900;
	if (mo < 1 || mo > 12 || h > 23 || mi > 59 || s > 59)
		return -1;
	yd = (mo == 2) ? 28 + leap(y) :
	     (mo == 4 || mo == 6 || mo == 9 || mo == 11) ? 30 : 31;
	if (d < 1 || d > yd)
		return -1;
	*t = days_since_epoch(y, mo, d) * 86400 + h * 3600 + mi * 60 + s;
	return 0;
}

int der_time(struct der *d, int64_t *t)
{
	struct der_tlv v;
	int tag = der_peek(d);

	if (tag != DER_UTC_TIME && tag != DER_GEN_TIME)
		return -1;
	if (der_next(d, &v) != 0)
		return -1;
	return der_time_parse(v.tag, v.val, v.len, t);
}

int der_oid_is(const struct der_tlv *t, const uint8_t *oid, size_t len)
{
	return t->tag == DER_OID && t->len == len &&
	       memcmp(t->val, oid, len) == 0;
}
