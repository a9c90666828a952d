// `sfpo version` / `sfpo doctor`: what this build runs on, and whether BLAS is the fast one.
#include <dlfcn.h>
#include <torch/torch.h>
#include <torch/version.h>

#include <chrono>
#include <climits>
#include <cstdlib>
#include <iostream>
#include <string>

#include "CLI/CLI.hpp"
#include "cli/commands.h"

namespace sfpo {
namespace {

// The shared library that provides sgemm_ (the BLAS LibTorch calls), resolved through links.
std::string BlasLibrary() {
  void* sym = dlsym(RTLD_DEFAULT, "sgemm_");
  Dl_info info{};
  if (sym == nullptr || dladdr(sym, &info) == 0 || info.dli_fname == nullptr) return "none found";
  char resolved[PATH_MAX];
  if (realpath(info.dli_fname, resolved) != nullptr) return resolved;
  return info.dli_fname;
}

// fp32 matmul throughput of a 512x512x512 product, best of 5, in GFLOP/s.
double MatmulGflops() {
  torch::NoGradGuard no_grad;
  auto a = torch::randn({512, 512});
  auto b = torch::randn({512, 512});
  auto c = torch::mm(a, b);
  double best = 1e30;
  for (int i = 0; i < 5; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    c = torch::mm(a, b);
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return 2.0 * 512 * 512 * 512 / best / 1e9;
}

int RunVersion(bool verbose) {
  const std::string blas = BlasLibrary();
  const bool openblas = blas.find("openblas") != std::string::npos;
  std::cout << "sfpo 0.1.0\n"
            << "torch: " << TORCH_VERSION << "\n"
            << "blas: " << blas << (openblas ? "" : "  (WARNING: not OpenBLAS; fp32 matmul ~35x slower)")
            << "\n"
            << "threads: " << at::get_num_threads() << "\n"
            << "cuda: " << (torch::cuda::is_available() ? "available" : "not available") << " ("
            << torch::cuda::device_count() << " devices)\n"
            << "matmul_fp32_gflops_512: " << MatmulGflops() << "\n";
  if (verbose) std::cout << at::show_config();
  return 0;
}

}  // namespace

void AddVersionCommand(CLI::App* root, CommandTable* table) {
  auto verbose = std::make_shared<bool>(false);
  CLI::App* version = root->add_subcommand("version", "Print versions, BLAS, threads and CUDA");
  version->add_flag("--verbose", *verbose, "Also print Torch's build configuration");
  CLI::App* doctor = root->add_subcommand("doctor", "Same as version, with Torch's build config");
  table->emplace_back(version, [verbose] { return RunVersion(*verbose); });
  table->emplace_back(doctor, [] { return RunVersion(true); });
}

}  // namespace sfpo
