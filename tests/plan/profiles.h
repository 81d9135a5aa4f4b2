/*
 * Recorded device profiles for the planner's tests (test_plan.c): what
 * clnorm_read_profile would read from each device, as plain data, so the
 * planner is tested for devices this machine does not have.
 */
#ifndef CLNORM_TEST_PROFILES_H
#define CLNORM_TEST_PROFILES_H

#include "internal.h"

typedef struct test_profile {
    const char *label;
    const char *source; /* where the numbers come from; "unmeasured" where no clnorm run has been made */
    clnorm_devinfo dev;
} test_profile;

/* Fills the profiles (their features from their strings, as
 * on a real device); returns their count. */
size_t test_profiles(test_profile *out, size_t max);

#endif
