import { render, screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it, vi } from "vitest";
import { ApiError, errorFromResponse, fieldError, formatWhen, friendlyMessage } from "../src/api/errors";
import { ErrorMessage } from "../src/components/ErrorMessage";
import { Field } from "../src/components/Field";

function envelope(status: number, error: object, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify({ error }), {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
}

describe("errorFromResponse", () => {
  it("reads the envelope, the request id and Retry-After", async () => {
    const now = Date.now();
    const error = await errorFromResponse(
      envelope(
        429,
        { type: "rate_limit_error", code: "message_quota_exceeded", message: "Monthly message quota of 100 reached." },
        { "retry-after": "120", "x-request-id": "req_1" },
      ),
    );
    expect(error).toBeInstanceOf(ApiError);
    expect(error.status).toBe(429);
    expect(error.code).toBe("message_quota_exceeded");
    expect(error.requestId).toBe("req_1");
    expect(error.retryAt!.getTime()).toBeGreaterThanOrEqual(now + 119_000);
  });

  it("survives a body that is not an envelope", async () => {
    const error = await errorFromResponse(new Response("<html>bad gateway</html>", { status: 502 }));
    expect(error.status).toBe(502);
    expect(error.message).toMatch(/502/);
  });
});

describe("friendly messages", () => {
  it("field errors belong to their field", () => {
    const error = new ApiError(422, { code: "validation_error", message: "Enter a valid email.", param: "email" });
    expect(fieldError(error, "email")).toBe("Enter a valid email.");
    expect(fieldError(error, "password")).toBeNull();
    const nested = new ApiError(422, { message: "Too short.", param: "body.password" });
    expect(fieldError(nested, "password")).toBe("Too short.");
    const prefixed = new ApiError(422, { message: "email: value is not a valid email address.", param: "email" });
    expect(fieldError(prefixed, "email")).toBe("Value is not a valid email address.");
  });

  it("a quota error says when to try again", () => {
    const error = new ApiError(
      429,
      { type: "rate_limit_error", code: "message_quota_exceeded", message: "Monthly message quota reached." },
      { retryAfterS: 3600, now: new Date("2026-01-01T10:00:00") },
    );
    expect(friendlyMessage(error)).toMatch(/^Monthly message quota reached\. You can try again at /);
    expect(friendlyMessage(error)).toMatch(/11[:.]00/);
  });

  it("a reset on another day names the day", () => {
    const now = new Date("2026-01-01T10:00:00");
    expect(formatWhen(new Date("2026-01-01T11:00:00"), now)).not.toMatch(/2026/);
    expect(formatWhen(new Date("2026-02-01T10:00:00"), now)).toMatch(/Feb.*2026/);
  });

  it("no connection at all", () => {
    expect(friendlyMessage(new TypeError("Failed to fetch"))).toMatch(/could not be reached/);
    expect(friendlyMessage(new ApiError(0, {}))).toMatch(/could not be reached/);
  });
});

describe("<ErrorMessage>", () => {
  it("renders an alert with title, message and request id, and a retry", async () => {
    const retry = vi.fn();
    const error = new ApiError(
      429,
      { type: "rate_limit_error", code: "message_quota_exceeded", message: "Monthly message quota reached." },
      { requestId: "req_42", retryAfterS: 60 },
    );
    render(<ErrorMessage error={error} onRetry={retry} />);
    const alert = screen.getByRole("alert");
    expect(alert).toHaveTextContent("Limit reached");
    expect(alert).toHaveTextContent("Monthly message quota reached. You can try again at");
    expect(alert).toHaveTextContent("Request req_42");
    await userEvent.click(screen.getByRole("button", { name: "Try again" }));
    expect(retry).toHaveBeenCalledOnce();
  });

  it("renders nothing without an error, and a short form when compact", () => {
    const { container, rerender } = render(<ErrorMessage error={null} />);
    expect(container).toBeEmptyDOMElement();
    rerender(<ErrorMessage error={new ApiError(404, { message: "No conversation conv_1." })} compact />);
    expect(screen.getByRole("alert")).toHaveTextContent(/^No conversation conv_1\.$/);
  });

  it("a rate limit reads differently from a quota", () => {
    render(<ErrorMessage error={new ApiError(429, { code: "rate_limit_exceeded", message: "Too many requests." })} />);
    expect(screen.getByRole("alert")).toHaveTextContent("Slow down");
  });
});

describe("<Field>", () => {
  it("ties its error to the input", () => {
    render(<Field label="Email" value="x" onChange={() => undefined} error="Enter a valid email." />);
    const input = screen.getByLabelText("Email");
    expect(input).toHaveAttribute("aria-invalid", "true");
    expect(input).toHaveAccessibleDescription("Enter a valid email.");
  });
});
