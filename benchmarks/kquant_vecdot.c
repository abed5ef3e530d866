// What the batch-invariance patch costs the K-quant vec_dot (generation's kernel): the same
// ggml_vec_dot_{q4,q5,q6}_K_q8_K from two CPU backend libraries (A, B) on the same random blocks,
// single thread, best of SWEEPS sweeps over 2048 rows of 2048 weights (L2/L3-resident, so this is
// the compute cost; generation on real models is mostly memory-bound). Also prints the largest
// relative difference of the results (the patch changes rounding, not the math).
//
//   cc -O2 -o /tmp/kquant_vecdot benchmarks/kquant_vecdot.c -ldl -lm
//   /tmp/kquant_vecdot STOCK/libggml-cpu-icelake.so PATCHED/libggml-cpu-icelake.so 300
//   (run with LD_LIBRARY_PATH pointing at a folder holding libggml-base.so)
#include <dlfcn.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef void (*vec_dot_t)(int, float *, size_t, const void *, size_t, const void *, size_t, int);

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char ** argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s LIB_A LIB_B SWEEPS\n", argv[0]);
        return 2;
    }
    const int K = 2048, NB = K / 256, ROWS = 2048, SWEEPS = atoi(argv[3]);
    const char * names[3] = {"ggml_vec_dot_q4_K_q8_K", "ggml_vec_dot_q5_K_q8_K", "ggml_vec_dot_q6_K_q8_K"};
    const int block_size[3] = {144, 176, 210};
    const int d_offset[3][2] = {{0, 2}, {0, 2}, {208, -1}};  // fp16 d (and dmin) inside each block
    void * lib[2] = {dlopen(argv[1], RTLD_NOW | RTLD_LOCAL), dlopen(argv[2], RTLD_NOW | RTLD_LOCAL)};
    if (!lib[0] || !lib[1]) {
        fprintf(stderr, "%s\n", dlerror());
        return 1;
    }
    for (int l = 0; l < 2; l++) {
        ((void (*)(void)) dlsym(lib[l], "ggml_cpu_init"))();  // fills the fp16 table vec_dot reads
    }
    srand(1);
    uint8_t * y = malloc(292 * NB);  // block_q8_K: float d, int8 qs[256], int16 bsums[16]
    for (int b = 0; b < NB; b++) {
        uint8_t * p = y + 292 * b;
        const float d = 0.01f;
        memcpy(p, &d, 4);
        int8_t * qs = (int8_t *) (p + 4);
        int16_t bsums[16];
        for (int i = 0; i < 256; i++) qs[i] = (int8_t) (rand() % 255 - 127);
        for (int j = 0; j < 16; j++) {
            int s = 0;
            for (int i = 0; i < 16; i++) s += qs[16 * j + i];
            bsums[j] = (int16_t) s;
        }
        memcpy(p + 260, bsums, 32);
    }
    for (int t = 0; t < 3; t++) {
        const size_t bytes = (size_t) block_size[t] * NB * ROWS;
        uint8_t * x = malloc(bytes);
        for (size_t i = 0; i < bytes; i++) x[i] = (uint8_t) rand();
        for (int b = 0; b < NB * ROWS; b++) {
            const uint16_t d = 0x2C00 + rand() % 0x400;  // fp16 in [0.0625, 0.125)
            for (int k = 0; k < 2; k++) {
                if (d_offset[t][k] >= 0) memcpy(x + (size_t) block_size[t] * b + d_offset[t][k], &d, 2);
            }
        }
        float * out[2] = {malloc(4 * ROWS), malloc(4 * ROWS)};
        double best[2] = {1e9, 1e9};
        vec_dot_t f[2] = {(vec_dot_t) dlsym(lib[0], names[t]), (vec_dot_t) dlsym(lib[1], names[t])};
        for (int s = 0; s < SWEEPS; s++) {
            for (int l = 0; l < 2; l++) {
                const double t0 = now();
                for (int r = 0; r < ROWS; r++) f[l](K, &out[l][r], 0, x + (size_t) block_size[t] * NB * r, 0, y, 0, 1);
                const double dt = now() - t0;
                if (dt < best[l]) best[l] = dt;
            }
        }
        double rel = 0;
        for (int r = 0; r < ROWS; r++) {
            const double d = fabs(out[0][r] - out[1][r]) / (fabs(out[0][r]) + 1e-3);
            if (d > rel) rel = d;
        }
        printf("%s: A %.1f us, B %.1f us per %d rows x %d (B/A %.2f), largest relative difference %.1e\n",
               names[t], best[0] * 1e6, best[1] * 1e6, ROWS, K, best[1] / best[0], rel);
        free(x);
        free(out[0]);
        free(out[1]);
    }
    free(y);
    return 0;
}
