// Errors raised by the fastface C++ core.
//
// Every public function reports bad input by throwing fastface::Error; the code tells
// callers (and the Python layer, which maps it to ValueError / OSError / RuntimeError)
// what kind of problem it was without parsing the message.
#pragma once

#include <stdexcept>
#include <string>

namespace fastface {

enum class ErrorCode {
    InvalidArgument,  // malformed shapes, values or options supplied by the caller
    Io,               // a file could not be opened or read
    ModelFormat,      // model files that ncnn cannot parse or that do not fit the card
    Runtime,          // inference failed inside ncnn
};

class Error : public std::runtime_error {
public:
    Error(ErrorCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
    ErrorCode code() const noexcept { return code_; }

private:
    ErrorCode code_;
};

}  // namespace fastface
