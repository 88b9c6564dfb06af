import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { useEffect } from "react";
import { BrowserRouter, Navigate, Route, Routes, useLocation } from "react-router";
import { ApiError } from "./api/errors";
import { resumeSession } from "./api/session";
import { useSession } from "./api/useSession";
import { Layout } from "./components/Layout";
import { Loading } from "./components/Loading";
import { OrgProvider } from "./lib/org";
import { ChatPage } from "./pages/Chat";
import { KeysPage } from "./pages/Keys";
import { LoginPage, SignupPage } from "./pages/Auth";
import { InvitationPage } from "./pages/Invitation";
import { OrgPage } from "./pages/Org";
import { PlanPage } from "./pages/Plan";
import { UsagePage } from "./pages/Usage";

const queryClient = new QueryClient({
  defaultOptions: {
    queries: {
      staleTime: 15_000,
      refetchOnWindowFocus: false,
      // Client errors will not mend by asking again.
      retry: (count, error) => !(error instanceof ApiError && error.status < 500 && error.status !== 0) && count < 2,
    },
  },
});

function RequireSession({ children }: { children: React.ReactNode }) {
  const { accessToken, ready } = useSession();
  const location = useLocation();
  if (!ready) return <Loading label="Signing you in…" />;
  if (!accessToken) return <Navigate to="/login" replace state={{ from: location.pathname + location.search }} />;
  return <OrgProvider>{children}</OrgProvider>;
}

function Signed({ children }: { children: React.ReactNode }) {
  return (
    <RequireSession>
      <Layout>{children}</Layout>
    </RequireSession>
  );
}

export function App() {
  useEffect(() => {
    // A page load starts with no access token: the refresh cookie may still hold a session.
    void resumeSession();
  }, []);
  return (
    <QueryClientProvider client={queryClient}>
      <BrowserRouter>
        <Routes>
          <Route path="/login" element={<LoginPage />} />
          <Route path="/signup" element={<SignupPage />} />
          <Route path="/" element={<Navigate to="/chat" replace />} />
          <Route path="/chat" element={<Signed><ChatPage /></Signed>} />
          <Route path="/chat/:conversationId" element={<Signed><ChatPage /></Signed>} />
          <Route path="/keys" element={<Signed><KeysPage /></Signed>} />
          <Route path="/usage" element={<Signed><UsagePage /></Signed>} />
          <Route path="/organisation" element={<Signed><OrgPage /></Signed>} />
          <Route path="/plan" element={<Signed><PlanPage /></Signed>} />
          <Route path="/invitations/accept" element={<Signed><InvitationPage /></Signed>} />
          <Route path="*" element={<Navigate to="/chat" replace />} />
        </Routes>
      </BrowserRouter>
    </QueryClientProvider>
  );
}

export { queryClient };
