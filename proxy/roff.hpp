// The few pieces of man(7) markup proxyd's and proxyctl's manual pages are written with, so both
// pages escape text the same way. Header-only and pure: proxyctl uses it without the data plane.
#pragma once

#include <string>
#include <string_view>

namespace proxyd::roff {

// Text as roff prints it: a backslash is \e, every '-' is \- (options and the ASCII hyphen
// render and copy-paste as such; man-pages(7) asks for it in command lines), and a line starting
// with '.' or '\'' is not taken for a request.
inline std::string escape(std::string_view text) {
  std::string out;
  bool line_start = true;
  for (const char c : text) {
    if (line_start && (c == '.' || c == '\'')) out += "\\&";
    if (c == '\\') {
      out += "\\e";
    } else if (c == '-') {
      out += "\\-";
    } else {
      out += c;
    }
    line_start = c == '\n';
  }
  return out;
}

// The title line and NAME section every page starts with; `section` is 8 for both of ours.
inline std::string header(std::string_view name, std::string_view version,
                          std::string_view summary) {
  std::string upper(name);
  for (char& c : upper) c = static_cast<char>(c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
  // No date in the title: the page of a given version is the same whenever it is built.
  // .nh, .ad l: command lines and paths read better unhyphenated and unstretched.
  return ".TH " + escape(upper) + " 8 \"\" \"proxyd " + escape(version) +
         "\" \"System Administration\"\n.nh\n.ad l\n.SH NAME\n" + escape(name) + " \\- " +
         escape(summary) + "\n";
}

inline std::string section(std::string_view title) { return ".SH " + std::string(title) + "\n"; }

// A tagged paragraph: `tag` in bold on a line of its own (.br: even when it is shorter than the
// indentation), `text` filled below it, indented. Each entry of `more` starts a new line.
inline std::string tagged(std::string_view tag, std::string_view text,
                          std::string_view more = {}) {
  std::string out = ".TP\n.B " + escape(tag) + "\n.br\n" + escape(text) + "\n";
  if (!more.empty()) out += ".br\n" + escape(more) + "\n";
  return out;
}

inline std::string paragraph(std::string_view text) { return ".PP\n" + escape(text) + "\n"; }

}  // namespace proxyd::roff
