// bf-matmul: a CPU-bound benchmark. Multiplies two dense N x N double matrices (cache-blocked,
// i-k-j order so the inner loop vectorises) and reports GFLOP/s. Fixed work per run, so runs
// are comparable; the result is checked against a known value so a broken build cannot report
// a fast wrong answer.
//
//   bf-matmul [--n 512] [--reps 2]
//   BITFUSION_RESULT matmul.gflops <value> GFLOP/s
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

int Arg(int argc, char** argv, const char* name, int fallback) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], name) == 0) return std::atoi(argv[i + 1]);
  }
  return fallback;
}

void Multiply(const std::vector<double>& a, const std::vector<double>& b, std::vector<double>& c,
              int n) {
  constexpr int kBlock = 64;
  std::fill(c.begin(), c.end(), 0.0);
  for (int ii = 0; ii < n; ii += kBlock) {
    for (int kk = 0; kk < n; kk += kBlock) {
      for (int i = ii; i < std::min(ii + kBlock, n); ++i) {
        for (int k = kk; k < std::min(kk + kBlock, n); ++k) {
          const double aik = a[static_cast<std::size_t>(i) * n + k];
          const double* brow = &b[static_cast<std::size_t>(k) * n];
          double* crow = &c[static_cast<std::size_t>(i) * n];
          for (int j = 0; j < n; ++j) crow[j] += aik * brow[j];
        }
      }
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) {
      std::printf(
          "usage: bf-matmul [--n N (512)] [--reps R (2)]\n"
          "Multiplies N x N double matrices R times; prints GFLOP/s as a\n"
          "BITFUSION_RESULT line.\n");
      return 0;
    }
  }
  const int n = Arg(argc, argv, "--n", 512);
  const int reps = Arg(argc, argv, "--reps", 2);
  if (n < 1 || n > 8192 || reps < 1) {
    std::fprintf(stderr, "bf-matmul: --n must be 1..8192 and --reps >= 1\n");
    return 2;
  }
  const std::size_t size = static_cast<std::size_t>(n) * n;
  // a = all ones, b[k][j] = j: every c[i][j] must equal n * j.
  std::vector<double> a(size, 1.0), b(size), c(size);
  for (int k = 0; k < n; ++k) {
    for (int j = 0; j < n; ++j) b[static_cast<std::size_t>(k) * n + j] = j;
  }
  const auto start = std::chrono::steady_clock::now();
  for (int r = 0; r < reps; ++r) Multiply(a, b, c, n);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  for (int j = 0; j < n; j += std::max(1, n / 7)) {
    if (c[static_cast<std::size_t>(n - 1) * n + j] != static_cast<double>(n) * j) {
      std::fprintf(stderr, "bf-matmul: wrong result at column %d\n", j);
      return 1;
    }
  }
  const double flops = 2.0 * n * n * static_cast<double>(n) * reps;
  std::printf("BITFUSION_RESULT matmul.gflops %.3f GFLOP/s\n", flops / seconds / 1e9);
  std::printf("BITFUSION_RESULT matmul.seconds %.6f s\n", seconds);
  return 0;
}
