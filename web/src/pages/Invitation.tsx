import { useMutation, useQueryClient } from "@tanstack/react-query";
import { Link, useNavigate, useSearchParams } from "react-router";
import { api, unwrap } from "../api/client";
import { keys } from "../api/hooks";
import { ErrorMessage } from "../components/ErrorMessage";
import { useOrg } from "../lib/org";

/** Where an invitation email's link lands: join the organisation, or decline. */
export function InvitationPage() {
  const [params] = useSearchParams();
  const token = params.get("token") ?? "";
  const qc = useQueryClient();
  const { switchOrg } = useOrg();
  const navigate = useNavigate();
  const accept = useMutation({
    mutationFn: () => unwrap(api.POST("/v1/invitations/accept", { body: { token } })),
    onSuccess: async (accepted) => {
      await qc.invalidateQueries({ queryKey: keys.orgs });
      switchOrg(accepted.organization.id);
      navigate("/organisation");
    },
  });
  const decline = useMutation({
    mutationFn: () => unwrap(api.POST("/v1/invitations/decline", { body: { token } })),
  });
  if (!token) {
    return (
      <div className="page">
        <h1>Invitation</h1>
        <p>This link has no invitation token. Open the link from your invitation email again.</p>
      </div>
    );
  }
  return (
    <div className="page">
      <h1>You are invited</h1>
      {decline.isSuccess ? (
        <p role="status">
          Invitation declined. <Link to="/chat">Go to your chats</Link>
        </p>
      ) : (
        <div className="card">
          <p>Someone invited you to join their organisation on Parley.</p>
          <div className="row">
            <button type="button" disabled={accept.isPending || decline.isPending} onClick={() => accept.mutate()}>
              {accept.isPending ? "Joining…" : "Accept invitation"}
            </button>
            <button type="button" className="button-secondary" disabled={accept.isPending || decline.isPending}
              onClick={() => decline.mutate()}>
              Decline
            </button>
          </div>
          <ErrorMessage error={accept.error ?? decline.error} />
        </div>
      )}
    </div>
  );
}
