/*
 * synth.h -- the synthetic data generator's model object, shared with the tests and benches
 * that sample clips in memory or score them with the exact Bayes posterior (src/train/synth.c;
 * the public side is mer_synth_write in mer.h).
 */
#ifndef MER_TRAIN_SYNTH_H
#define MER_TRAIN_SYNTH_H

#include "internal.h"

typedef struct mer__synth mer__synth;

/* Draw the parameters (class means) from p->seed. p's arrays are borrowed and must outlive *out. */
mer_status mer__synth_init(mer__synth **out, const mer_synth_params *p);
void mer__synth_free(mer__synth *s);
/* Normalised train and test priors (c each; either may be NULL). */
void mer__synth_priors(const mer__synth *s, double *pi_train, double *pi_test);
/* One clip: its class *y and x[m] (D_m floats per modality), drawn with the test prior when
 * test_split, else the train prior. */
void mer__synth_sample(const mer__synth *s, mer__rng *r, int test_split, int32_t *y,
                       float *const *x);
/* Exact Bayes posterior post (c) of clip x under the split's prior. */
void mer__synth_posterior(const mer__synth *s, int test_split, const float *const *x, float *post);

#endif
