// Minimal leveled logging to stderr: `SFPO_LOG(INFO) << "listening on " << port;`.
// One line per statement, prefixed with level, UTC time and source location; thread-safe.
#ifndef SFPO_COMMON_LOGGING_H_
#define SFPO_COMMON_LOGGING_H_

#include <sstream>

namespace sfpo {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

// Messages below this level are dropped. Default kInfo; SFPO_LOG_LEVEL=debug|info|warning|error
// in the environment overrides it at the first log call.
void SetMinLogLevel(LogLevel level);
LogLevel MinLogLevel();

namespace logging_internal {
class LogMessage {
 public:
  LogMessage(LogLevel level, const char* file, int line);
  ~LogMessage();
  std::ostream& stream() { return stream_; }

 private:
  LogLevel level_;
  std::ostringstream stream_;
};
}  // namespace logging_internal
}  // namespace sfpo

#define SFPO_LOG_LEVEL_DEBUG ::sfpo::LogLevel::kDebug
#define SFPO_LOG_LEVEL_INFO ::sfpo::LogLevel::kInfo
#define SFPO_LOG_LEVEL_WARNING ::sfpo::LogLevel::kWarning
#define SFPO_LOG_LEVEL_ERROR ::sfpo::LogLevel::kError
#define SFPO_LOG(level)                                        \
  if (SFPO_LOG_LEVEL_##level < ::sfpo::MinLogLevel()) {        \
  } else                                                       \
    ::sfpo::logging_internal::LogMessage(SFPO_LOG_LEVEL_##level, __FILE__, __LINE__).stream()

#endif  // SFPO_COMMON_LOGGING_H_
