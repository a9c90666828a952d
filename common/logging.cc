#include "common/logging.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <mutex>
#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace sfpo {
namespace {
LogLevel LevelFromEnv() {
  const char* env = std::getenv("SFPO_LOG_LEVEL");
  if (env == nullptr) return LogLevel::kInfo;
  std::string v(env);
  if (v == "debug") return LogLevel::kDebug;
  if (v == "warning") return LogLevel::kWarning;
  if (v == "error") return LogLevel::kError;
  return LogLevel::kInfo;
}
std::atomic<int>& Level() {
  static std::atomic<int> level{static_cast<int>(LevelFromEnv())};
  return level;
}
std::mutex& OutputMutex() {
  static std::mutex mu;
  return mu;
}
}  // namespace

void SetMinLogLevel(LogLevel level) { Level().store(static_cast<int>(level)); }
LogLevel MinLogLevel() { return static_cast<LogLevel>(Level().load()); }

namespace logging_internal {
LogMessage::LogMessage(LogLevel level, const char* file, int line) : level_(level) {
  static const char kLetters[] = {'D', 'I', 'W', 'E'};
  const char* base = std::strrchr(file, '/');
  stream_ << kLetters[static_cast<int>(level)]
          << absl::FormatTime("%H:%M:%E3S", absl::Now(), absl::UTCTimeZone()) << ' '
          << (base ? base + 1 : file) << ':' << line << "] ";
}
LogMessage::~LogMessage() {
  (void)level_;
  stream_ << '\n';
  std::lock_guard<std::mutex> lock(OutputMutex());
  std::cerr << stream_.str() << std::flush;
}
}  // namespace logging_internal
}  // namespace sfpo
