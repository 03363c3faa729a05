/* Numbers as the CSV writes them, for the compiled line builder (_lines.c): integers as
 * str(int), timestamps as RFC 3339 UTC (cql_text.rfc3339_array_bytes's texts), doubles
 * and floats as their shortest decimal (csv_doubles.shortest_decimals's method). Each
 * writes to out and returns the new end (shortest_decimal: the length, or -1). */
#ifndef CASSANDRA_EXPORT_NUMBER_TEXTS_H
#define CASSANDRA_EXPORT_NUMBER_TEXTS_H

#include <string.h>

static char *write_unsigned(char *out, unsigned long long magnitude) {
    char digits[20];
    int count = 0;
    do {
        digits[count++] = (char)('0' + magnitude % 10);
        magnitude /= 10;
    } while (magnitude);
    while (count) {
        *out++ = digits[--count];
    }
    return out;
}

/* The shortest decimal of a float64 (wide) or float32 of magnitude in [2**-7, 2**49)
 * (float32: [2**-7, 2**24)), as csv_doubles.shortest_decimals finds it: the value is
 * m * 2**-s, its fraction digits come one at a time by multiplying the binary fraction by
 * 10, and the first k whose candidates (rounded down or up) lie within half a unit in
 * the last place is the shortest; the nearer candidate is taken. Writes it to out and
 * returns its length, or -1 where the method gives nothing (outside the range, a power of
 * two, two candidates equally near, zeros, NaN and infinities). */
static int shortest_decimal(const void *value, int wide, char *out) {
    unsigned long long bits, width, top, low, high;
    int negative;
    if (wide) {
        memcpy(&bits, value, 8);
        negative = (int)(bits >> 63);
        bits &= 0x7FFFFFFFFFFFFFFFULL;
        width = 52, top = 1076, low = 0x3F80000000000000ULL, high = 0x4300000000000000ULL;
    } else {
        unsigned int narrow;
        memcpy(&narrow, value, 4);
        negative = (int)(narrow >> 31);
        bits = narrow & 0x7FFFFFFFU;
        width = 23, top = 151, low = 0x3C000000ULL, high = 0x4B800000ULL;
    }
    unsigned long long mantissa_bits = (1ULL << width) - 1;
    if (bits < low || bits >= high || (bits & mantissa_bits) == 0) {
        return -1;
    }
    unsigned long long m = (bits & mantissa_bits) | (1ULL << width);
    unsigned long long shift = top - (bits >> width); /* fraction bits of twice the value */
    unsigned long long unit = 1ULL << shift, low_bits = unit - 1, half = unit >> 1;
    unsigned long long fraction = (m << 1) & low_bits, whole = m >> (shift - 1);
    unsigned long long limit = 1;
    char digits[20];
    int places = -1, rounded_up = 0;
    for (int k = 0; k < 20; k++, limit *= 10) {
        unsigned long long rest = unit - fraction;
        unsigned long long near = fraction < rest ? fraction : rest;
        if (near < limit) {
            int down = fraction < limit, up = rest < limit;
            if (down && up && fraction == half) {
                return -1;
            }
            rounded_up = up && (!down || fraction > half);
            places = k;
            break;
        }
        fraction *= 10;
        digits[k] = (char)('0' + (fraction >> shift));
        fraction &= low_bits;
    }
    if (places < 0) {
        return -1;
    }
    if (rounded_up) { /* never carries: a carry would end the decimal in a zero */
        if (places) {
            digits[places - 1]++;
        } else {
            whole++;
        }
    }
    char *start = out;
    if (negative) {
        *out++ = '-';
    }
    out = write_unsigned(out, whole);
    *out++ = '.';
    if (places == 0) {
        *out++ = '0';
    }
    memcpy(out, digits, (size_t)places);
    return (int)(out + places - start);
}

/* A value as str(int) writes it. */
static char *write_integer(char *out, long long value) {
    if (value < 0) {
        *out++ = '-';
        return write_unsigned(out, 0ULL - (unsigned long long)value);
    }
    return write_unsigned(out, (unsigned long long)value);
}

static char *write_two(char *out, int value) {
    out[0] = (char)('0' + value / 10);
    out[1] = (char)('0' + value % 10);
    return out + 2;
}

/* Floor division, for values before the epoch. */
static long long floor_div(long long value, long long divisor) {
    long long quotient = value / divisor;
    return quotient - (value % divisor != 0 && (value < 0) != (divisor < 0));
}

/* Days since 1970-01-01 (0001-01-01 to 9999-12-31) -> the proleptic Gregorian date
 * (the civil_from_days algorithm: 400-year eras of 146097 days from 0000-03-01). */
static void civil_date(long long days, int *year, int *month, int *day) {
    long long z = days + 719468;
    long long era = floor_div(z, 146097);
    long long day_of_era = z - era * 146097;
    long long year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36524 - day_of_era / 146096) / 365;
    long long day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    long long shifted_month = (5 * day_of_year + 2) / 153;
    *day = (int)(day_of_year - (153 * shifted_month + 2) / 5 + 1);
    *month = (int)(shifted_month < 10 ? shifted_month + 3 : shifted_month - 9);
    *year = (int)(year_of_era + era * 400 + (*month <= 2));
}

/* First and last day of years 1-9999, in days since the epoch. */
#define FIRST_DAY (-719162LL)
#define LAST_DAY 2932896LL

/* The last timestamp text written in this call: the cells of a row written together
 * share a writetime, and rows loaded together a second, so a text is often a copy of
 * the previous one (whole, or its first 19 bytes, 'YYYY-MM-DDTHH:MM:SS'). It is read
 * back from the output, which only grows. */
typedef struct {
    const char *text;  /* NULL: none yet */
    long long value, seconds;
    long per_second;
    Py_ssize_t size;
} Recent;

/* A count of 1/per_second seconds since the epoch as RFC 3339 UTC with the fraction's
 * digits (3 or 6), outside years 1-9999 as the integer. */
static char *write_timestamp(char *out, long long value, long per_second, Recent *recent) {
    if (recent->text != NULL && value == recent->value && per_second == recent->per_second) {
        memcpy(out, recent->text, (size_t)recent->size);
        recent->text = out;
        return out + recent->size;
    }
    long long seconds = floor_div(value, per_second);
    long long days = floor_div(seconds, 86400);
    if (days < FIRST_DAY || days > LAST_DAY) {
        return write_integer(out, value);
    }
    char *start = out;
    if (recent->text != NULL && seconds == recent->seconds) {
        memcpy(out, recent->text, 19);
        out += 19;
    } else {
        int second_of_day = (int)(seconds - days * 86400);
        int year, month, day;
        civil_date(days, &year, &month, &day);
        out = write_two(out, year / 100);
        out = write_two(out, year % 100);
        *out++ = '-';
        out = write_two(out, month);
        *out++ = '-';
        out = write_two(out, day);
        *out++ = 'T';
        out = write_two(out, second_of_day / 3600);
        *out++ = ':';
        out = write_two(out, second_of_day / 60 % 60);
        *out++ = ':';
        out = write_two(out, second_of_day % 60);
    }
    *out++ = '.';
    long long fraction = value - seconds * per_second;
    for (long unit = per_second / 10; unit; unit /= 10) {
        *out++ = (char)('0' + fraction / unit % 10);
    }
    *out++ = 'Z';
    recent->text = start;
    recent->value = value;
    recent->seconds = seconds;
    recent->per_second = per_second;
    recent->size = out - start;
    return out;
}

#endif
