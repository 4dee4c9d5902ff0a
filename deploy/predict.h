/* predict.h — psrun predict: scores a data file with a job's trained model,
 * split across N `psworker predict` processes (docs/deployment.md#predictions). */
#ifndef PS_PSRUN_PREDICT_H
#define PS_PSRUN_PREDICT_H

/* argv after "predict" (argv[0] is "predict"); psworker: the program to run.
 * Returns the exit status. */
int psrun_predict_main(int argc, char **argv, const char *psworker);

#endif
