import { useState, type FormEvent } from "react";
import { Link, Navigate, useLocation, useNavigate } from "react-router";
import { logIn, signUp } from "../api/auth";
import { fieldError, fieldOf } from "../api/errors";
import { useSession } from "../api/useSession";
import { ErrorMessage } from "../components/ErrorMessage";
import { Field } from "../components/Field";
import { Loading } from "../components/Loading";

function fromOf(state: unknown): string | null {
  const from = (state as { from?: string } | null)?.from;
  return from && !from.startsWith("/login") && !from.startsWith("/signup") ? from : null;
}

function useAfterSignIn(): () => void {
  const navigate = useNavigate();
  const location = useLocation();
  return () => navigate(fromOf(location.state) ?? "/chat", { replace: true });
}

function AuthCard({ title, children }: { title: string; children: React.ReactNode }) {
  return (
    <main className="auth" id="main">
      <div className="auth-card">
        <p className="brand">Parley</p>
        <h1>{title}</h1>
        {children}
      </div>
    </main>
  );
}

function useForm(submit: () => Promise<void>) {
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const onSubmit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await submit();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  return { error, busy, onSubmit };
}

export function LoginPage() {
  const location = useLocation();
  const { accessToken, ready } = useSession();
  const done = useAfterSignIn();
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const { error, busy, onSubmit } = useForm(async () => {
    await logIn({ email, password });
    done();
  });
  if (!ready) return <Loading />;
  if (accessToken) return <Navigate to={fromOf(location.state) ?? "/chat"} replace />;
  return (
    <AuthCard title="Log in">
      <form onSubmit={onSubmit} noValidate>
        <Field label="Email" type="email" autoComplete="email" required value={email}
          onChange={(e) => setEmail(e.target.value)} error={fieldError(error, "email")} />
        <Field label="Password" type="password" autoComplete="current-password" required value={password}
          onChange={(e) => setPassword(e.target.value)} error={fieldError(error, "password")} />
        {error != null && !fieldOf(error) && <ErrorMessage error={error} compact />}
        <button type="submit" disabled={busy}>{busy ? "Logging in…" : "Log in"}</button>
      </form>
      <p>New here? <Link to="/signup" state={location.state}>Create an account</Link></p>
    </AuthCard>
  );
}

export function SignupPage() {
  const location = useLocation();
  const { accessToken, ready } = useSession();
  const done = useAfterSignIn();
  const [name, setName] = useState("");
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const { error, busy, onSubmit } = useForm(async () => {
    await signUp({ email, password, name });
    done();
  });
  if (!ready) return <Loading />;
  if (accessToken) return <Navigate to={fromOf(location.state) ?? "/chat"} replace />;
  return (
    <AuthCard title="Create your account">
      <form onSubmit={onSubmit} noValidate>
        <Field label="Name" autoComplete="name" value={name} onChange={(e) => setName(e.target.value)}
          error={fieldError(error, "name")} />
        <Field label="Email" type="email" autoComplete="email" required value={email}
          onChange={(e) => setEmail(e.target.value)} error={fieldError(error, "email")} />
        <Field label="Password" type="password" autoComplete="new-password" required value={password}
          onChange={(e) => setPassword(e.target.value)} error={fieldError(error, "password")}
          hint="A long passphrase is best." />
        {error != null && !fieldOf(error) && <ErrorMessage error={error} compact />}
        <button type="submit" disabled={busy}>{busy ? "Creating…" : "Sign up"}</button>
      </form>
      <p>Have an account? <Link to="/login" state={location.state}>Log in</Link></p>
    </AuthCard>
  );
}
