#include "bitfusion/status.h"

#include <cerrno>
#include <cstring>
#include <string>

#include "bitfusion/log.h"

namespace bitfusion {

std::string_view StatusCodeName(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return "ok";
    case StatusCode::kInvalidArgument: return "invalid_argument";
    case StatusCode::kNotFound: return "not_found";
    case StatusCode::kAlreadyExists: return "already_exists";
    case StatusCode::kPermissionDenied: return "permission_denied";
    case StatusCode::kFailedPrecondition: return "failed_precondition";
    case StatusCode::kResourceExhausted: return "resource_exhausted";
    case StatusCode::kUnavailable: return "unavailable";
    case StatusCode::kDeadlineExceeded: return "deadline_exceeded";
    case StatusCode::kCancelled: return "cancelled";
    case StatusCode::kIOError: return "io_error";
    case StatusCode::kUnimplemented: return "unimplemented";
    case StatusCode::kInternal: return "internal";
  }
  return "unknown";
}

Status::Status(StatusCode code, std::string_view message)
    : code_(code), message_(code == StatusCode::kOk ? std::string() : Redact(message)) {}

std::string Status::ToString() const {
  if (ok()) return "ok";
  std::string out(StatusCodeName(code_));
  out += ": ";
  out += message_;
  return out;
}

Status Status::WithContext(std::string_view context) const {
  if (ok()) return *this;
  std::string message(context);
  message += ": ";
  message += message_;
  return Status(code_, message);
}

Status InvalidArgumentError(std::string_view m) { return {StatusCode::kInvalidArgument, m}; }
Status NotFoundError(std::string_view m) { return {StatusCode::kNotFound, m}; }
Status AlreadyExistsError(std::string_view m) { return {StatusCode::kAlreadyExists, m}; }
Status PermissionDeniedError(std::string_view m) { return {StatusCode::kPermissionDenied, m}; }
Status FailedPreconditionError(std::string_view m) { return {StatusCode::kFailedPrecondition, m}; }
Status ResourceExhaustedError(std::string_view m) { return {StatusCode::kResourceExhausted, m}; }
Status UnavailableError(std::string_view m) { return {StatusCode::kUnavailable, m}; }
Status DeadlineExceededError(std::string_view m) { return {StatusCode::kDeadlineExceeded, m}; }
Status CancelledError(std::string_view m) { return {StatusCode::kCancelled, m}; }
Status IOError(std::string_view m) { return {StatusCode::kIOError, m}; }
Status UnimplementedError(std::string_view m) { return {StatusCode::kUnimplemented, m}; }
Status InternalError(std::string_view m) { return {StatusCode::kInternal, m}; }

Status ErrnoError(int errnum, std::string_view what) {
  std::string message(what);
  message += ": ";
  message += std::strerror(errnum);
  switch (errnum) {
    case ENOENT:
    case ESRCH: return NotFoundError(message);
    case EACCES:
    case EPERM:
    case EROFS: return PermissionDeniedError(message);
    case EEXIST: return AlreadyExistsError(message);
    case EINVAL:
    case ENAMETOOLONG:
    case ENOTDIR:
    case EISDIR: return InvalidArgumentError(message);
    case ENOSPC:
    case EMFILE:
    case ENFILE:
    case ENOMEM: return ResourceExhaustedError(message);
    case ETIMEDOUT: return DeadlineExceededError(message);
    case ECONNREFUSED:
    case ECONNRESET:
    case EHOSTUNREACH:
    case ENETUNREACH:
    case EAGAIN: return UnavailableError(message);
    case EINTR:
    case ECANCELED: return CancelledError(message);
    default: return IOError(message);
  }
}

StatusError::StatusError(Status status)
    : std::runtime_error(status.ToString()), status_(std::move(status)) {}

void throw_exception_from_error(const Status& status, const boost::source_location&) {
  throw StatusError(status);
}

}  // namespace bitfusion
